"""Errors meant for people: one line naming the culprit and the fix; the CLI exits with status 2."""


class UserError(Exception):
    """Bad input from the user (config, CLI argument, file, model name). Printed as one line."""


class ConfigError(UserError):
    """A config value or key is wrong. ``key`` is the dotted path of the culprit."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, prefix: str) -> "ConfigError":
        """The same error with its key placed under ``prefix``."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message)


def did_you_mean(name: str, known) -> str:
    """``Did you mean 'x'? `` for the closest known name, or an empty string."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"Did you mean '{close[0]}'? " if close else ""
