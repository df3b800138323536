"""The kernel every package stands on: facts about mail that are the same everywhere."""
