"""Project-wide base errors. Subpackages derive their own (e.g. ``imkd_ros.data.errors.DatasetError``)."""

from __future__ import annotations

__all__ = ["ImkdError", "InputError"]


class ImkdError(Exception):
    """An error caused by the user's input (files, arguments); the CLI prints it as one line and exits 2."""


class InputError(ImkdError, ValueError):
    """A bad argument value (a count below its minimum, an unknown name, too few of something); also a
    :class:`ValueError`, as callers that only know the standard library expect."""
