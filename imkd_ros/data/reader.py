"""Read any nuScenes-format dataroot (the real nuScenes or the synthetic world) into :class:`imkd_ros.core.types.Frame`.

Plain JSON: the tables are loaded once and indexed by token; the devkit's ``NuScenes`` class is not used (it loads
and reverse-indexes everything, and needs the maps). Tables read from ``<dataroot>/<version>/``: scene, sample,
sample_data, ego_pose, calibrated_sensor, sensor, sample_annotation, instance, category, attribute.

Reference frame of a :class:`Frame`: the ego vehicle at the timestamp of the first camera's keyframe (that
sample_data's own ``ego_pose``). Radar and LiDAR sweeps, the other cameras (exposed at other times on a surround rig)
and the ground truth are moved into it through the global frame: ``sensor -> ego(sensor time) -> global ->
ego(reference)``, all with :class:`imkd_ros.core.transforms.Pose`.

Which sweeps: :func:`imkd_ros.core.sweeps.select_sweeps`, the same causal selection as the detector node (the newest
sweep at or before the camera stamp, then earlier ones), unless ``selection="nuscenes"`` asks for the nuScenes
keyframe convention (not deployable; for comparisons with published numbers).

Unlabelled scenes (drives recorded with every sensor but never annotated, e.g. ``imkd synth --unlabelled-scenes``
or nuScenes' test split): their frames read like any other with an empty ``gt``; :meth:`NuScenesReader.is_labelled`
tells them from labelled scenes that happen to hold no object (their description has the tag
:data:`UNLABELLED_TAG`, or the version has no annotation at all).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.classes import CLASSES, class_of_category
from imkd_ros.core.errors import InputError
from imkd_ros.core.sweeps import (
    NUSCENES,
    SELECTIONS,
    SweepWindow,
    lag_seconds,
    lidar_sweep_to_ref,
    radar_sweep_to_ref,
    select_sweeps,
    sweep_to_ref,
)
from imkd_ros.core.transforms import Pose, quat_to_yaw
from imkd_ros.core.types import Boxes, Calibration, Frame
from imkd_ros.data.errors import DatasetError, ImageFileError
from imkd_ros.data.pcd import read_lidar_bin, read_radar_pcd

__all__ = [
    "NuScenesReader",
    "REFERENCE_CAMERA",
    "TABLES",
    "UNLABELLED_TAG",
    "read_image",
    "weather_of_description",
    "labelled_of_description",
]

#: The reference camera of a dataset's default rig when it has one (nuScenes' and the synthetic world's front camera):
#: its keyframe time and ego pose are a frame's.
REFERENCE_CAMERA = "CAM_FRONT"

#: The tables the reader needs under ``<dataroot>/<version>/``.
TABLES: tuple[str, ...] = (
    "scene",
    "sample",
    "sample_data",
    "ego_pose",
    "calibrated_sensor",
    "sensor",
    "sample_annotation",
    "instance",
    "category",
    "attribute",
)

_WEATHER_TAG = re.compile(r"weather=([A-Za-z0-9_\-]+)")
#: The tag in a scene description that marks a scene recorded without annotations.
UNLABELLED_TAG = "labels=none"
_LIDAR_CHANNEL = "LIDAR_TOP"


def read_image(path: str | PathLike[str]) -> np.ndarray:
    """A camera image file as ``(H, W, 3)`` uint8 RGB.

    Raises:
        ImageFileError: the file is missing, truncated or cannot be decoded (the message names it).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ImageFileError(f"{path}: image file missing") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageFileError(f"{path}: truncated or corrupt image, cannot be decoded ({exc})") from exc


def weather_of_description(description: str) -> str:
    """Weather tag of a scene description (``"... weather=rain ..."`` -> ``"rain"``), or ``"unknown"``."""
    m = _WEATHER_TAG.search(description or "")
    return m.group(1) if m else "unknown"


def labelled_of_description(description: str) -> bool:
    """False when a scene description carries :data:`UNLABELLED_TAG` (``"..., labels=none"``), else True."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(UNLABELLED_TAG)}(?![A-Za-z0-9_])", description or "") is None


class NuScenesReader:
    """Token-indexed access to a nuScenes-format dataroot.

    Args:
        dataroot: folder holding ``<version>/`` (the JSON tables), ``samples/`` and ``sweeps/``.
        version: table folder name, e.g. ``"v1.0-synth"``, ``"v1.0-mini"``, ``"v1.0-trainval"``.
        cameras: camera channels of :attr:`Frame.images`, the first the reference (its keyframe's time and ego pose
            are the frame's; the others' calibrations map into that ego frame, ego motion between the exposures
            included). None (default): the dataset's rig, every camera of its ``sensor`` table in table order with
            :data:`REFERENCE_CAMERA` first when it has one (the synthetic front rig: CAM_FRONT; nuScenes: its six).
        radars: radar channels whose points are concatenated into :attr:`Frame.radar`. None (default): every radar
            of the ``sensor`` table.
        radar_sweeps: sweeps per radar, counting the key sweep (>= 1).
        lidar_sweeps: LiDAR sweeps, counting the key sweep (>= 1).
        selection: ``"causal"`` (default; :func:`imkd_ros.core.sweeps.select_sweeps` with ``radar_window`` /
            ``lidar_window``, as the node) or ``"nuscenes"`` (each sensor's keyframe and the sweeps before it).
        radar_window, lidar_window: causal age limits; their ``count`` is replaced by ``radar_sweeps`` /
            ``lidar_sweeps``. Default :class:`~imkd_ros.core.sweeps.SweepWindow` (0.1 s key delay, 0.6 s max age).
        load_lidar: read the LiDAR (``Frame.lidar`` is None otherwise).
        load_image: read the image (``Frame.image`` is None otherwise; the calibration is still given).

    Raises:
        DatasetError: missing dataroot, version folder or table, unreadable JSON, or a record lacking a field.
    """

    def __init__(
        self,
        dataroot: str | PathLike[str],
        version: str = "v1.0-synth",
        *,
        cameras: Sequence[str] | None = None,
        radars: Sequence[str] | None = None,
        radar_sweeps: int = 6,
        lidar_sweeps: int = 1,
        load_lidar: bool = True,
        load_image: bool = True,
        selection: str = "causal",
        radar_window: SweepWindow | None = None,
        lidar_window: SweepWindow | None = None,
    ) -> None:
        for what, names in (("cameras", cameras), ("radars", radars)):
            if names is not None and (isinstance(names, str) or (what == "cameras" and not names)):
                raise InputError(f"{what} must be a sequence of channel names (None: the dataset's), got {names!r}")
        if radar_sweeps < 1 or lidar_sweeps < 1:
            raise InputError(f"radar_sweeps ({radar_sweeps}) and lidar_sweeps ({lidar_sweeps}) must be >= 1")
        if selection not in SELECTIONS:
            raise InputError(f"unknown sweep selection {selection!r}: choose from {', '.join(SELECTIONS)}")
        self.selection = selection
        self.radar_window = replace(radar_window or SweepWindow(), count=int(radar_sweeps))
        self.lidar_window = replace(lidar_window or SweepWindow(), count=int(lidar_sweeps))
        self.dataroot = Path(dataroot)
        self.version = version
        self.cameras: tuple[str, ...] = () if cameras is None else tuple(cameras)
        self.radars: tuple[str, ...] = () if radars is None else tuple(radars)
        self.radar_sweeps = int(radar_sweeps)
        self.lidar_sweeps = int(lidar_sweeps)
        self.load_lidar = load_lidar
        self.load_image = load_image

        if not self.dataroot.is_dir():
            raise DatasetError(f"dataroot {self.dataroot} is not a folder")
        if not (self.dataroot / version).is_dir():
            raise DatasetError(f"{version}/ (the table folder) missing under {self.dataroot}")
        self._build_indexes({name: self._load_table(name) for name in TABLES})
        if cameras is None:
            self.cameras = self.channels("camera")
            if REFERENCE_CAMERA in self.cameras:
                self.cameras = (REFERENCE_CAMERA, *(c for c in self.cameras if c != REFERENCE_CAMERA))
            if not self.cameras:
                raise DatasetError(f"{self.dataroot / version}: the sensor table has no camera (a frame needs one)")
        if radars is None:
            self.radars = self.channels("radar")

    # -- loading ------------------------------------------------------------------------------------------------
    def channels(self, modality: str) -> tuple[str, ...]:
        """The channels of the dataset's sensors of ``modality`` (``"camera"``, ``"radar"``, ``"lidar"``), in
        ``sensor`` table order."""
        return tuple(r["channel"] for r in self._sensor.values() if r.get("modality") == modality)

    @property
    def camera(self) -> str:
        """The reference camera channel (the first of :attr:`cameras`)."""
        return self.cameras[0]

    def _load_table(self, name: str) -> list[dict[str, Any]]:
        path = self.dataroot / self.version / f"{name}.json"
        if not path.is_file():
            raise DatasetError(f"{self.version}/{name}.json missing under {self.dataroot}")
        try:
            with open(path, encoding="utf-8") as f:
                records = json.load(f)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable table ({exc})") from exc
        if not isinstance(records, list):
            raise DatasetError(f"{path}: a table must be a JSON list of records")
        return records

    def _build_indexes(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        where = ""  # the table being indexed, for the error message
        try:
            by_token: dict[str, dict[str, dict[str, Any]]] = {}
            for where in TABLES:
                by_token[where] = {r["token"]: r for r in tables[where]}
            self._scene, self._sample, self._sd = by_token["scene"], by_token["sample"], by_token["sample_data"]
            self._ego_pose, self._cs, self._sensor = (
                by_token["ego_pose"],
                by_token["calibrated_sensor"],
                by_token["sensor"],
            )
            self._ann, self._instance = by_token["sample_annotation"], by_token["instance"]
            self._category, self._attribute = by_token["category"], by_token["attribute"]

            where = "calibrated_sensor"
            channel_of_cs = {t: self._sensor[r["sensor_token"]]["channel"] for t, r in self._cs.items()}
            where = "sample_data"
            self._key_sd: dict[tuple[str, str], str] = {}
            for t, r in self._sd.items():
                if r["is_key_frame"]:
                    self._key_sd[(r["sample_token"], channel_of_cs[r["calibrated_sensor_token"]])] = t
            where = "sample_annotation"
            self._anns_of_sample: dict[str, list[str]] = defaultdict(list)
            for t, r in self._ann.items():
                self._anns_of_sample[r["sample_token"]].append(t)
            where = "instance"
            self._category_of_instance = {
                t: self._category[r["category_token"]]["name"] for t, r in self._instance.items()
            }
            where = "sample"
            samples_of_scene: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in self._sample.values():
                samples_of_scene[r["scene_token"]].append(r)
            where = "scene"
            self._scene_by_name: dict[str, dict[str, Any]] = {}
            self._samples_of_scene_name: dict[str, list[str]] = {}
            for t, r in self._scene.items():
                self._scene_by_name[r["name"]] = r
                ordered = sorted(samples_of_scene.get(t, []), key=lambda s: s["timestamp"])
                self._samples_of_scene_name[r["name"]] = [s["token"] for s in ordered]
        except KeyError as exc:
            raise DatasetError(
                f"{where}.json under {self.dataroot / self.version}: a record lacks field, or refers to an unknown "
                f"token, {exc.args[0]!r}"
            ) from exc

    # -- tokens, scenes, splits ---------------------------------------------------------------------------------
    @property
    def sample_tokens(self) -> list[str]:
        """All sample tokens, scene by scene (table order) and in time order within a scene."""
        return [t for toks in self._samples_of_scene_name.values() for t in toks]

    @property
    def scene_names(self) -> list[str]:
        """All scene names in table order."""
        return list(self._scene_by_name)

    def __len__(self) -> int:
        return len(self._sample)

    def scene_samples(self, scene_name: str) -> list[str]:
        """Sample tokens of one scene in time order."""
        if scene_name not in self._samples_of_scene_name:
            raise DatasetError(f"scene {scene_name!r} not in {self.version} under {self.dataroot}")
        return list(self._samples_of_scene_name[scene_name])

    def scene_of(self, sample_token: str) -> str:
        """Name of the scene a sample belongs to."""
        return self._scene[self._sample_record(sample_token)["scene_token"]]["name"]

    def weather_of_scene(self, scene_name: str) -> str:
        """Weather tag of a scene (``weather=...`` in its description), or ``"unknown"``."""
        if scene_name not in self._scene_by_name:
            raise DatasetError(f"scene {scene_name!r} not in {self.version} under {self.dataroot}")
        return weather_of_description(self._scene_by_name[scene_name].get("description", ""))

    def is_labelled(self, scene_name: str) -> bool:
        """False for a scene recorded without annotations: its description has :data:`UNLABELLED_TAG`, or the
        version holds no ``sample_annotation`` at all (nuScenes' test split). A labelled scene may still have
        samples without any object."""
        if scene_name not in self._scene_by_name:
            raise DatasetError(f"scene {scene_name!r} not in {self.version} under {self.dataroot}")
        return bool(self._ann) and labelled_of_description(self._scene_by_name[scene_name].get("description", ""))

    def split_scenes(self, split: str) -> list[str]:
        """Scene names of a split that exist in this version, in the split's order.

        Splits come from ``<dataroot>/<version>/splits.json`` (``{"name": [scene names]}``) when it defines
        ``split``, else from the devkit's predefined nuScenes splits (train, val, mini_train, mini_val, ...). A split
        that ``splits.json`` defines with no scenes (e.g. ``synth_unlabelled`` of a fully labelled dataset) is
        empty: ``[]``.

        Raises:
            DatasetError: unknown split, or none of its scenes are in this version.
        """
        names: list[str] | None = None
        splits_file = self.dataroot / self.version / "splits.json"
        custom: dict[str, Any] = {}
        if splits_file.is_file():
            try:
                custom = json.loads(splits_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise DatasetError(f"{splits_file}: unreadable ({exc})") from exc
        if split in custom:
            names = list(custom[split])
        else:
            from nuscenes.utils.splits import create_splits_scenes  # heavy import, only for the real dataset

            predefined = create_splits_scenes()
            if split not in predefined:
                known = sorted(set(custom) | set(predefined))
                raise DatasetError(f"unknown split {split!r} for {self.dataroot / self.version}; known: {known}")
            names = list(predefined[split])
        present = [n for n in names if n in self._scene_by_name]
        if not present and names:
            raise DatasetError(
                f"split {split!r}: none of its {len(names)} scenes are in {self.dataroot / self.version}"
            )
        return present

    def split_samples(self, split: str) -> list[str]:
        """Sample tokens of the scenes of ``split`` (see :meth:`split_scenes`), scene by scene, in time order."""
        return [t for name in self.split_scenes(split) for t in self._samples_of_scene_name[name]]

    # -- records ------------------------------------------------------------------------------------------------
    def _sample_record(self, sample_token: str) -> dict[str, Any]:
        try:
            return self._sample[sample_token]
        except KeyError:
            raise DatasetError(f"sample token {sample_token!r} not in {self.version} under {self.dataroot}") from None

    def keyframe_token(self, sample_token: str, channel: str) -> str:
        """Token of the keyframe sample_data of ``channel`` in a sample.

        Raises:
            DatasetError: the sample has no keyframe for that channel.
        """
        self._sample_record(sample_token)
        try:
            return self._key_sd[(sample_token, channel)]
        except KeyError:
            raise DatasetError(f"sample {sample_token} has no {channel} keyframe in sample_data.json") from None

    def sample_data(self, sample_data_token: str) -> dict[str, Any]:
        """A copy of a sample_data record (timestamp in microseconds, ``filename`` relative to the dataroot, ...)."""
        try:
            return dict(self._sd[sample_data_token])
        except KeyError:
            raise DatasetError(f"sample_data token {sample_data_token!r} not in {self.version}") from None

    def ego_pose_of(self, sample_data_token: str) -> Pose:
        """Ego -> global pose at a sample_data's timestamp."""
        rec = self._ego_pose[self._sd[sample_data_token]["ego_pose_token"]]
        return Pose.from_quat(rec["rotation"], rec["translation"])

    def sensor_to_ego(self, sample_data_token: str) -> Pose:
        """Sensor -> ego mounting pose of a sample_data."""
        rec = self._cs[self._sd[sample_data_token]["calibrated_sensor_token"]]
        return Pose.from_quat(rec["rotation"], rec["translation"])

    def _file_of(self, sd_token: str) -> Path:
        path = self.dataroot / self._sd[sd_token]["filename"]
        if not path.is_file():
            raise DatasetError(
                f"{self._sd[sd_token]['filename']} missing under {self.dataroot} (sample_data {sd_token})"
            )
        return path

    def sweep_tokens(self, sample_token: str, channel: str, ref_time_us: int, window: SweepWindow) -> list[str]:
        """The sample_data tokens of ``channel`` that make the frame at ``ref_time_us``, key sweep first.

        Causal (default): :func:`imkd_ros.core.sweeps.select_sweeps` over the channel's sweeps around the reference
        time; ``"nuscenes"``: the channel's keyframe of the sample and up to ``count - 1`` earlier sweeps.
        """
        key = self.keyframe_token(sample_token, channel)
        if self.selection == NUSCENES:
            tokens = [key]
            while len(tokens) < window.count and self._sd[tokens[-1]]["prev"]:
                tokens.append(self._sd[tokens[-1]]["prev"])
            return tokens
        sd = self._sd
        tok = key
        while sd[tok]["next"] and int(sd[sd[tok]["next"]]["timestamp"]) <= ref_time_us:
            tok = sd[tok]["next"]
        while tok and int(sd[tok]["timestamp"]) > ref_time_us:
            tok = sd[tok]["prev"]
        newest_first = []
        while tok and len(newest_first) < window.count:
            newest_first.append(tok)
            tok = sd[tok]["prev"]
        ascending = newest_first[::-1]
        stamps = [int(sd[t]["timestamp"]) * 1000 for t in ascending]
        return [ascending[i] for i in select_sweeps(stamps, ref_time_us * 1000, window)]

    def annotation_velocity(self, annotation_token: str, max_time_diff: float = 1.5) -> np.ndarray:
        """Global velocity ``(3,)`` m/s of an annotation exactly as the devkit's ``NuScenes.box_velocity``: centred
        difference of the prev/next annotations' positions over their samples' times (one-sided at a track's ends),
        NaN when the track has one annotation or the time gap exceeds ``max_time_diff`` (doubled when centred)."""
        cur = self._ann[annotation_token]
        has_prev, has_next = cur["prev"] != "", cur["next"] != ""
        if not has_prev and not has_next:
            return np.full(3, np.nan)
        first = self._ann[cur["prev"]] if has_prev else cur
        last = self._ann[cur["next"]] if has_next else cur
        pos_diff = np.asarray(last["translation"], dtype=np.float64) - np.asarray(first["translation"], np.float64)
        time_diff = 1e-6 * self._sample[last["sample_token"]]["timestamp"] - (
            1e-6 * self._sample[first["sample_token"]]["timestamp"]
        )
        if has_prev and has_next:
            max_time_diff *= 2
        if time_diff > max_time_diff:
            return np.full(3, np.nan)
        return pos_diff / time_diff

    def annotations(self, sample_token: str) -> list[dict[str, Any]]:
        """The sample's annotation records (copies, table order) with ``category_name``, ``attribute_names`` and
        ``detection_class`` (None where the category is not detected) added; ``num_lidar_pts`` and
        ``num_radar_pts`` are as stored."""
        self._sample_record(sample_token)
        out = []
        for t in self._anns_of_sample.get(sample_token, []):
            rec = dict(self._ann[t])
            rec["category_name"] = self._category_of_instance[rec["instance_token"]]
            rec["attribute_names"] = [self._attribute[a]["name"] for a in rec.get("attribute_tokens", [])]
            rec["detection_class"] = class_of_category(rec["category_name"])
            out.append(rec)
        return out

    # -- frames -------------------------------------------------------------------------------------------------
    def frame(self, sample_token: str) -> Frame:
        """One keyframe, everything in the ego frame at the camera keyframe's timestamp.

        - ``radar`` ``(N, 7)`` float32, columns :data:`imkd_ros.core.types.RADAR_FEATURES`: per radar channel the
          sweeps of :meth:`sweep_tokens` (causal by default: the newest at or before the camera stamp and up to
          ``radar_sweeps - 1`` earlier ones; devkit default filters), moved by
          :func:`imkd_ros.core.sweeps.radar_sweep_to_ref` (sensor -> ego(sweep) -> global -> ego(reference), positions
          advanced by ``v_comp * lag``, ``time_lag = max(lag, 0)``).
        - ``lidar`` ``(M, 6)`` float32, columns :data:`imkd_ros.core.types.LIDAR_FEATURES`: ``LIDAR_TOP`` sweeps of
          :meth:`sweep_tokens` moved by :func:`imkd_ros.core.sweeps.lidar_sweep_to_ref`.
        - ``gt``: annotations whose category maps to a detection class, as :class:`Boxes` in ``"ego"`` with
          devkit velocities (NaN when not computable), ``tokens`` = annotation tokens.

        Raises:
            DatasetError: unknown token, a missing keyframe for a configured channel, or a missing data file.
            ImageFileError: a truncated or corrupt camera image (a :class:`DatasetError`).
            PointCloudError: a corrupt point-cloud file.
        """
        sample = self._sample_record(sample_token)
        cam_sd = self.keyframe_token(sample_token, self.camera)
        ref_time = int(self._sd[cam_sd]["timestamp"])
        ego_pose = self.ego_pose_of(cam_sd)
        global_to_ref = ego_pose.inverse()

        views = [self._camera_view(sample_token, ch, ego_pose) for ch in self.cameras]
        images = tuple(v[0] for v in views) if self.load_image else None
        cameras = tuple(v[1] for v in views)

        radar = [
            self._radar_sweep(sd, ego_pose, ref_time)
            for ch in self.radars
            for sd in self.sweep_tokens(sample_token, ch, ref_time, self.radar_window)
        ]
        radar_arr = np.concatenate(radar, axis=0) if radar else np.zeros((0, 7), np.float32)

        lidar = None
        if self.load_lidar:
            tokens = self.sweep_tokens(sample_token, _LIDAR_CHANNEL, ref_time, self.lidar_window)
            sweeps = [self._lidar_sweep(sd, ego_pose, ref_time) for sd in tokens]
            lidar = np.concatenate(sweeps, axis=0) if sweeps else np.zeros((0, 6), np.float32)

        scene = self._scene[sample["scene_token"]]
        return Frame(
            token=sample_token,
            timestamp=ref_time,
            scene=scene["name"],
            images=images,
            cameras=cameras,
            radar=radar_arr,
            lidar=lidar,
            ego_pose=ego_pose,
            gt=self._gt_boxes(sample_token, global_to_ref),
            weather=weather_of_description(scene.get("description", "")),
        )

    def _camera_view(self, sample_token: str, channel: str, ref_pose: Pose) -> tuple[np.ndarray | None, Calibration]:
        """The image (None unless ``load_image``) and calibration of ``channel``'s keyframe of the sample, its
        mounting moved into the reference ego frame (sensor -> ego(exposure) -> global -> ego(reference); the
        reference camera's own mounting as it is)."""
        sd = self.keyframe_token(sample_token, channel)
        rec = self._sd[sd]
        image = self._read_image(sd) if self.load_image else None
        if image is not None:
            size = (int(image.shape[1]), int(image.shape[0]))
        elif rec.get("width") and rec.get("height"):
            size = (int(rec["width"]), int(rec["height"]))
        else:
            size = None
        intrinsic = self._cs[rec["calibrated_sensor_token"]].get("camera_intrinsic")
        mount = self.sensor_to_ego(sd) if channel == self.camera else self._sensor_to_ref(sd, ref_pose)
        k = np.asarray(intrinsic, dtype=np.float64) if intrinsic else None
        return image, Calibration(channel, mount, k, size)

    def frame_files(self, sample_token: str) -> list[tuple[str, Path]]:
        """The files :meth:`frame` reads for a sample, as ``(kind, path)`` with kind ``"image"``, ``"radar"`` or
        ``"lidar"`` (with this reader's settings: sweeps, ``load_image``, ``load_lidar``); whether they exist is not
        checked here (:mod:`imkd_ros.data.check` does).

        Raises:
            DatasetError: unknown token or a missing keyframe for a configured channel.
        """
        self._sample_record(sample_token)
        cam_sd = self.keyframe_token(sample_token, self.camera)
        ref_time = int(self._sd[cam_sd]["timestamp"])
        out: list[tuple[str, Path]] = []
        if self.load_image:
            for ch in self.cameras:
                out.append(("image", self.dataroot / self._sd[self.keyframe_token(sample_token, ch)]["filename"]))
        for ch in self.radars:
            for sd in self.sweep_tokens(sample_token, ch, ref_time, self.radar_window):
                out.append(("radar", self.dataroot / self._sd[sd]["filename"]))
        if self.load_lidar:
            for sd in self.sweep_tokens(sample_token, _LIDAR_CHANNEL, ref_time, self.lidar_window):
                out.append(("lidar", self.dataroot / self._sd[sd]["filename"]))
        return out

    def _read_image(self, sd_token: str) -> np.ndarray:
        return read_image(self._file_of(sd_token))

    def _sensor_to_ref(self, sd_token: str, ref_pose: Pose) -> Pose:
        return sweep_to_ref(self.sensor_to_ego(sd_token), self.ego_pose_of(sd_token), ref_pose)

    def _lag(self, sd_token: str, ref_time_us: int) -> float:
        return lag_seconds(ref_time_us * 1000, int(self._sd[sd_token]["timestamp"]) * 1000)

    def _radar_sweep(self, sd_token: str, ref_pose: Pose, ref_time: int) -> np.ndarray:
        pts = read_radar_pcd(self._file_of(sd_token), filtered=True)
        cols = np.stack([pts[c] for c in ("x", "y", "z", "rcs", "vx_comp", "vy_comp")], axis=1)
        pose = self._sensor_to_ref(sd_token, ref_pose)
        return radar_sweep_to_ref(cols, pose, self._lag(sd_token, ref_time))

    def _lidar_sweep(self, sd_token: str, ref_pose: Pose, ref_time: int) -> np.ndarray:
        pts = read_lidar_bin(self._file_of(sd_token))
        pose = self._sensor_to_ref(sd_token, ref_pose)
        return lidar_sweep_to_ref(pts, pose, self._lag(sd_token, ref_time))

    def _gt_boxes(self, sample_token: str, global_to_ref: Pose) -> Boxes:
        recs = [r for r in self.annotations(sample_token) if r["detection_class"] is not None]
        if not recs:
            empty = Boxes.empty("ego")
            empty.tokens = []
            return empty
        boxes = Boxes(
            center=[r["translation"] for r in recs],
            size=[r["size"] for r in recs],
            yaw=[quat_to_yaw(r["rotation"]) for r in recs],
            velocity=[self.annotation_velocity(r["token"])[:2] for r in recs],
            label=[CLASSES.index(r["detection_class"]) for r in recs],
            score=np.ones(len(recs)),
            frame="global",
            tokens=[r["token"] for r in recs],
        )
        return boxes.transform(global_to_ref, "ego")
