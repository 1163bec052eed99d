"""Exceptions of the :mod:`imkd_ros.data` subpackage.

Every message names what is wrong and where (file, table, token), so a CLI can print it as one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from imkd_ros.core.errors import ImkdError

__all__ = ["DataError", "DatasetError", "PointCloudError", "ImageFileError", "BadFilesError"]


class DataError(ImkdError):
    """Base class of all data errors."""


class DatasetError(DataError):
    """A nuScenes-format dataroot is unusable: missing or malformed table, missing file, unknown token or split."""


class PointCloudError(DataError):
    """A point-cloud file (radar ``.pcd`` or LiDAR ``.pcd.bin``) is missing, truncated or malformed, or the points
    handed to a writer do not have the expected layout."""


class ImageFileError(DatasetError):
    """A camera image file is missing, truncated or cannot be decoded."""


class BadFilesError(DataError):
    """The up-front check of a run (:func:`imkd_ros.data.check.check_samples`) found bad input files.

    Attributes:
        problems: one :class:`imkd_ros.data.check.FileProblem` per bad file (path, what is wrong, the samples that
            read it).
    """

    def __init__(self, message: str, problems: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
