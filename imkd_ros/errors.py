"""Project-wide base error. Subpackages derive their own (e.g. ``imkd_ros.data.errors.DatasetError``)."""

from __future__ import annotations

__all__ = ["ImkdError"]


class ImkdError(Exception):
    """An error caused by the user's input (files, arguments); the CLI prints it as one line and exits 2."""
