"""The composition root: configuration, the command line, the scheduler."""
