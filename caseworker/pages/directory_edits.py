"""Directory edits (being written)."""

routes: list = []
