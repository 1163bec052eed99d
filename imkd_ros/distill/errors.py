"""Exceptions of the :mod:`imkd_ros.distill` subpackage.

Every message names what is wrong and where (config field, cache file, sample token), so a CLI can print it as one
line. They derive from :class:`imkd_ros.core.errors.ImkdError` (the CLI's "user input" error) and :class:`ValueError`.
"""

from __future__ import annotations

from imkd_ros.core.errors import ImkdError

__all__ = ["DistillError", "DistillConfigError", "TargetCacheError"]


class DistillError(ImkdError, ValueError):
    """Base class of all distillation errors."""


class DistillConfigError(DistillError):
    """A :class:`~imkd_ros.distill.config.DistillConfig` is inconsistent, or does not fit the student or the cache
    (e.g. stage 3 asked of a student without a fuser, a cache on another grid)."""


class TargetCacheError(DistillError):
    """A teacher-target cache is missing, of another format version, corrupt (checksum), incomplete for the
    samples asked, or incompatible with the build that would resume it."""
