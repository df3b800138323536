"""The demo: the whole pipeline on the local defaults, with sample mail (`pcse demo`).

It stands on top of everything, service included; the service finds its command
through the `pcse.commands` entry point (pyproject.toml)."""
