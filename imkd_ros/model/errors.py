"""Exceptions of the :mod:`imkd_ros.model` subpackage.

Every message names what is wrong and where (config field, input tensor and its shape), so a CLI can print it as
one line. Both classes also derive from :class:`ValueError`, as callers that only know the standard library expect.
"""

from __future__ import annotations

from imkd_ros.core.errors import ImkdError

__all__ = ["ModelError", "ModelConfigError", "ModelInputError"]


class ModelError(ImkdError):
    """Base class of all model errors (an :class:`~imkd_ros.core.errors.ImkdError`: the CLI prints it as one line)."""


class ModelConfigError(ModelError, ValueError):
    """A model configuration is inconsistent, or a dict does not describe one (unknown key, wrong type)."""


class ModelInputError(ModelError, ValueError):
    """A tensor handed to a model has the wrong shape or dtype, or a required input is missing."""
