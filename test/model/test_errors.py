"""The model's errors are project errors (the CLI prints them as one line) and stay ValueErrors."""

from __future__ import annotations

from imkd_ros.core.errors import ImkdError
from imkd_ros.model.errors import ModelConfigError, ModelError, ModelInputError


def test_model_errors_are_imkd_errors() -> None:
    assert issubclass(ModelError, ImkdError)
    for cls in (ModelConfigError, ModelInputError):
        assert issubclass(cls, ModelError) and issubclass(cls, ValueError)
