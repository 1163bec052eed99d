"""On-disk cache of shrunk training frames (``imkd train --stream --frame-cache DIR``).

A streamed training step reads each of its frames from the dataset: six 1600x900 JPEGs decoded and resized, radar
and LiDAR sweeps parsed and moved into the keyframe's ego frame (a surround keyframe: 74 ms idle from files in the
page cache, about 1 s from cold files beside training jobs). The cache keeps each frame as
:func:`~imkd_ros.model.preprocess.shrink_frame` left it (images at the model input, LiDAR cut to the grid: about
1.6 MB per surround keyframe with LiDAR) in one ``.npz`` per sample, written on first use and read back (3 ms idle;
``imkd bench --only reader``) ever after, by any run with the same recipe.

The recipe (the reader's options and what of the model config shrinking depends on: modalities, image config,
grid) names a sub-folder by its sha256, so a cache folder can hold frames of several datasets and models without
mixing them; ``recipe.json`` there says what they are. Files hold plain arrays (``np.load(allow_pickle=False)``)
and are written atomically; a file that cannot be read is rebuilt from the dataset (a warning names it). A cached
frame is the frame to the bit (tested).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.atomic import atomic_write_bytes, atomic_write_text
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes, Calibration, Frame
from imkd_ros.model.config import ModelConfig

__all__ = ["FrameCache", "frame_to_arrays", "frame_from_arrays"]

_FORMAT = 1
_BOX_FIELDS = ("center", "size", "yaw", "velocity", "label", "score")


def frame_to_arrays(frame: Frame) -> dict[str, np.ndarray]:
    """``frame`` as named plain arrays (no pickled objects); :func:`frame_from_arrays` inverts it exactly."""
    meta = {
        "format": _FORMAT,
        "token": frame.token,
        "timestamp": int(frame.timestamp),
        "scene": frame.scene,
        "weather": frame.weather,
        "cameras": [
            {"channel": c.channel, "image_size": None if c.image_size is None else [int(v) for v in c.image_size]}
            for c in frame.cameras
        ],
        "images": frame.images is not None,
        "lidar": frame.lidar is not None,
        "gt": None if frame.gt is None else {"frame": frame.gt.frame, "tokens": frame.gt.tokens},
    }
    out = {"meta": np.array(json.dumps(meta)), "radar": frame.radar}
    out["ego_rotation"], out["ego_translation"] = frame.ego_pose.rotation, frame.ego_pose.translation
    for i, cam in enumerate(frame.cameras):
        out[f"cam{i}_rotation"], out[f"cam{i}_translation"] = cam.sensor_to_ego.rotation, cam.sensor_to_ego.translation
        if cam.intrinsic is not None:
            out[f"cam{i}_intrinsic"] = cam.intrinsic
        if frame.images is not None:
            out[f"image{i}"] = frame.images[i]
    if frame.lidar is not None:
        out["lidar"] = frame.lidar
    if frame.gt is not None:
        out.update({f"gt_{k}": getattr(frame.gt, k) for k in _BOX_FIELDS})
    return out


def frame_from_arrays(arrays: Mapping[str, np.ndarray]) -> Frame:
    """The :class:`Frame` of :func:`frame_to_arrays`' arrays."""
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != _FORMAT:
        raise ValueError(f"frame cache format {meta.get('format')!r}, expected {_FORMAT}")
    cameras = []
    for i, cam in enumerate(meta["cameras"]):
        size = cam["image_size"]
        cameras.append(
            Calibration(
                channel=cam["channel"],
                sensor_to_ego=Pose(arrays[f"cam{i}_rotation"], arrays[f"cam{i}_translation"]),
                intrinsic=arrays[f"cam{i}_intrinsic"] if f"cam{i}_intrinsic" in arrays else None,
                image_size=None if size is None else (int(size[0]), int(size[1])),
            )
        )
    gt = meta["gt"]
    return Frame(
        token=meta["token"],
        timestamp=meta["timestamp"],
        scene=meta["scene"],
        images=tuple(arrays[f"image{i}"] for i in range(len(cameras))) if meta["images"] else None,
        cameras=tuple(cameras),
        radar=arrays["radar"],
        lidar=arrays["lidar"] if meta["lidar"] else None,
        ego_pose=Pose(arrays["ego_rotation"], arrays["ego_translation"]),
        gt=None
        if gt is None
        else Boxes(**{k: arrays[f"gt_{k}"] for k in _BOX_FIELDS}, frame=gt["frame"], tokens=gt["tokens"]),
        weather=meta["weather"],
    )


def _shrink_recipe(config: ModelConfig) -> dict[str, Any]:
    """What of a model config :func:`~imkd_ros.model.preprocess.shrink_frame` depends on."""
    d = config.to_dict()
    return {"modalities": d["modalities"], "image": d["image"], "grid": d["grid"]}


class FrameCache:
    """Shrunk frames of one recipe under ``root/<sha256 of the recipe>/<sample token>.npz``.

    Args:
        root: the cache folder (created; shared by recipes).
        reader_options: the :class:`~imkd_ros.data.reader.NuScenesReader` keyword arguments the frames are read with
            (the dataroot is resolved to an absolute path for the key).
        config: the model the frames are shrunk for.
    """

    def __init__(self, root: str | Path, reader_options: Mapping[str, Any], config: ModelConfig) -> None:
        options = {k: str(Path(v).resolve()) if k == "dataroot" else v for k, v in reader_options.items()}
        recipe = {"format": _FORMAT, "reader": options, "model": _shrink_recipe(config)}
        text = json.dumps(recipe, sort_keys=True, default=str)
        self.dir = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "recipe.json").is_file():
            atomic_write_text(self.dir / "recipe.json", json.dumps(recipe, indent=1, sort_keys=True, default=str))

    def path(self, token: str) -> Path:
        return self.dir / f"{token}.npz"

    def get(self, token: str, build: Callable[[], Frame]) -> Frame:
        """The cached frame of ``token``, or ``build()``'s, cached on the way."""
        path = self.path(token)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return frame_from_arrays({k: z[k] for k in z.files})
            except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt from the dataset
                warnings.warn(f"frame cache: {path} unreadable ({exc}); rebuilt from the dataset", stacklevel=2)
        frame = build()
        buffer = io.BytesIO()
        np.savez(buffer, **frame_to_arrays(frame))
        atomic_write_bytes(path, buffer.getvalue())
        return frame
