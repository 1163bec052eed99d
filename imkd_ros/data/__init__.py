"""nuScenes-format data: point-cloud files, the dataset reader, the up-front check of a run's input files
(:mod:`imkd_ros.data.check`) and (in ``synth/``) the synthetic world writer.

Import the torch ``Dataset`` from :mod:`imkd_ros.data.dataset` directly: it is kept out of this package's namespace
so that importing the reader or the point-cloud files does not import torch.
"""

from __future__ import annotations

from imkd_ros.data.errors import BadFilesError, DataError, DatasetError, ImageFileError, PointCloudError
from imkd_ros.data.pcd import (
    RADAR_PCD_DTYPE,
    RADAR_PCD_FIELDS,
    read_lidar_bin,
    read_radar_pcd,
    write_lidar_bin,
    write_radar_pcd,
)
from imkd_ros.data.reader import NuScenesReader

__all__ = [
    "BadFilesError",
    "DataError",
    "DatasetError",
    "ImageFileError",
    "NuScenesReader",
    "PointCloudError",
    "RADAR_PCD_DTYPE",
    "RADAR_PCD_FIELDS",
    "read_lidar_bin",
    "read_radar_pcd",
    "write_lidar_bin",
    "write_radar_pcd",
]
