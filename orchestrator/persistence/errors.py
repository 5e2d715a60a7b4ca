"""What the stores raise, besides ``routing.config.ConfigError`` for an invalid configuration."""

from __future__ import annotations


class VersionConflictError(Exception):
    """The change was based on data another writer has changed since: re-read and retry."""

    def __init__(self, message: str, *, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class NotFoundError(LookupError):
    """No resource or contact with this id."""


class DuplicateContactError(Exception):
    """A contact with this id was created before (a retried create must not make a second)."""


class TransitionError(ValueError):
    """A route event that cannot happen to the contact in its current status."""
