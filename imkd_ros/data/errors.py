"""Exceptions of the :mod:`imkd_ros.data` subpackage.

Every message names what is wrong and where (file, table, token), so a CLI can print it as one line.
"""

from __future__ import annotations

from imkd_ros.errors import ImkdError

__all__ = ["DataError", "DatasetError", "PointCloudError"]


class DataError(ImkdError):
    """Base class of all data errors."""


class DatasetError(DataError):
    """A nuScenes-format dataroot is unusable: missing or malformed table, missing file, unknown token or split."""


class PointCloudError(DataError):
    """A point-cloud file (radar ``.pcd`` or LiDAR ``.pcd.bin``) is missing, truncated or malformed, or the points
    handed to a writer do not have the expected layout."""
