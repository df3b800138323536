"""The base of every error a user can cause and fix; the CLI prints these as one sentence."""


class PcseError(Exception):
    """An error whose message is a clear sentence for the person who caused it."""


class ConfigError(PcseError, ValueError):
    """A configuration the service cannot run with; the message says what to fix."""
