"""Errors meant for people: one line naming the culprit and the fix; the CLI exits with status 2.

Project exceptions pickle (they cross Ray's process boundaries: a trial or a Train worker that
raises one hands it to the driver intact), and :func:`find_user_error` digs one out of the
wrappers that Ray, Ray Train and Ray Tune put around it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, CLI argument, file, model name). Printed as one line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message,))


class ConfigError(UserError):
    """A config value or key is wrong. ``key`` is the dotted path of the culprit."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message

    def __reduce__(self):
        return (type(self), (self.key, self.message))

    def under(self, prefix: str) -> "ConfigError":
        """The same error with its key placed under ``prefix``."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message)


def find_user_error(exc: BaseException | None, _depth: int = 0) -> UserError | None:
    """The :class:`UserError` inside ``exc`` (itself, its causes, or what Ray wrapped), or None.

    Looks through ``__cause__``/``__context__``, Ray's ``RayTaskError.cause`` (and
    ``as_instanceof_cause``), Ray Train's ``worker_failures`` and Tune's ``error``/``errors`` attributes.
    """
    if exc is None or _depth > 12:
        return None
    if _depth == 0:
        found = find_user_error(exc, 1)
        return found if found is not None else _user_error_in_text(exc)
    cause = getattr(exc, "cause", None)  # RayTaskError(ConfigError) is a ConfigError whose text is a traceback
    if isinstance(exc, UserError) and not isinstance(cause, BaseException):
        return exc
    for candidate in _inner(exc):
        found = find_user_error(candidate, _depth + 1)
        if found is not None:
            return found
    return None


def _inner(exc: BaseException) -> list[BaseException]:
    """The exceptions Ray, Ray Train and Tune wrapped in ``exc``."""
    inner: list = [getattr(exc, "cause", None), exc.__cause__, exc.__context__, getattr(exc, "error", None)]
    failures = getattr(exc, "worker_failures", None) or getattr(exc, "errors", None)
    if isinstance(failures, dict):
        inner.extend(failures.values())
    elif isinstance(failures, (list, tuple)):
        inner.extend(failures)
    return [c for c in inner if isinstance(c, BaseException) and c is not exc]


def _user_error_in_text(exc: BaseException, _depth: int = 0) -> UserError | None:
    """The last ``raysweep.errors.UserError: ...`` line of a traceback Ray kept only as text.

    Ray Data wraps an exception raised in a pipeline stage in ``UserCodeException`` and ships only
    the text of its traceback to the consumer, so the object is gone but its line is not.
    """
    import re

    if exc is None or _depth > 12:
        return None
    lines = re.findall(r"^raysweep\.errors\.(?:UserError|ConfigError): (.+)$", str(exc), flags=re.M)
    if lines:
        return UserError(lines[-1].strip())
    for candidate in _inner(exc):
        found = _user_error_in_text(candidate, _depth + 1)
        if found is not None:
            return found
    return None


def did_you_mean(name: str, known) -> str:
    """``Did you mean 'x'? `` for the closest known name, or an empty string."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"Did you mean '{close[0]}'? " if close else ""
