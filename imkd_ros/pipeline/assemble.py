"""The detector node without ROS: its input side (radar sweeps, camera frames,
CameraInfo and ego poses in, the :class:`~imkd_ros.core.types.Frame` the model gets out) and the geometry of its RViz
markers.

Pure Python and numpy (no rclpy, no ROS message types), so the live node (:mod:`imkd_ros.nodes.detector_node`)
and the offline bag replay (:mod:`imkd_ros.apps.replay`) pair and assemble frames, and draw markers, with one piece
of code. Callers convert their messages (rclpy messages in the node, rosbags messages in the replay) into the numpy
inputs below and feed them in arrival order:

* :meth:`FrameAssembler.set_calibration` per CameraInfo; :meth:`FrameAssembler.add_pose` per ego pose;
* :meth:`FrameAssembler.add_radar` per radar ``PointCloud2`` (as a structured point array ``(N,)``);
* :meth:`FrameAssembler.add_camera` per image (``(H, W, 3)`` uint8 RGB).

Pairing is :class:`imkd_ros.pipeline.sync.CameraRadarSync` (keep-latest camera slot, radar ring buffers, multi-sweep);
earlier sweeps are moved into the camera frame's ego frame through a :class:`imkd_ros.pipeline.sync.PoseBuffer`
(:func:`assemble_frame`), exactly as the dataset reader builds ``Frame.radar``. Bad input raises
:class:`FrameInputError` naming the problem; the state is left as it was, so the caller drops the message and goes
on.

Markers: :func:`marker_specs` lays out what :func:`imkd_ros.ros.messages.boxes_to_markers` (rclpy) and
:func:`imkd_ros.bag.report.markers_msg` (rosbags) build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from imkd_ros.core.errors import ImkdError
from imkd_ros.core.sweeps import lag_seconds, radar_sweep_to_ref, sweep_to_ref
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes, Calibration, Frame
from imkd_ros.pipeline.sync import CameraRadarSync, PoseBuffer, SyncedSet, SyncEvent

if TYPE_CHECKING:
    from imkd_ros.pipeline.detector_params import DetectorNodeConfig

__all__ = [
    "RADAR_MSG_FIELDS",
    "FrameInputError",
    "radar_cloud_points",
    "check_image",
    "assemble_frame",
    "AssembledFrame",
    "FrameAssembler",
    "MARKER_ARROW",
    "MARKER_LINE_LIST",
    "MARKER_TEXT",
    "CLASS_RGB",
    "MarkerSpec",
    "marker_specs",
]

#: The fields a radar ``PointCloud2`` must carry (sensor frame: m, dBsm, m/s); others (the rest of the 18 nuScenes
#: radar fields) are used for the devkit's default filters when present.
RADAR_MSG_FIELDS: tuple[str, ...] = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")
_FILTER_FIELDS = ("invalid_state", "dyn_prop", "ambig_state")


class FrameInputError(ImkdError, ValueError):
    """An input the assembler cannot use (oversized radar cloud, missing field, NaN, image size that
    does not match the CameraInfo, no CameraInfo yet); the text names the problem (bad input: an
    :class:`~imkd_ros.core.errors.ImkdError`, and a ``ValueError``)."""


def radar_cloud_points(cloud: np.ndarray, *, max_points: int = 5000, default_filters: bool = True) -> np.ndarray:
    """A radar cloud as a structured array ``(N,)`` (sensor frame, the ``PointCloud2`` fields) -> ``(N', 6)``
    float32 columns :data:`RADAR_MSG_FIELDS`.

    With ``default_filters`` and the fields ``invalid_state``, ``dyn_prop``, ``ambig_state`` present, the points the
    nuScenes devkit's default filters reject are dropped first (as the dataset reader does). A cloud without points
    (a radar facing empty space), or whose every point the filters reject, is a sweep of no points, ``(0, 6)``: the
    dataset reader counts such a sweep too, so the node selects the same sweeps as training did.

    Raises:
        FrameInputError: more than ``max_points`` points, a missing or multi-count field, or a non-finite value.
    """
    n = len(cloud)
    if n > max_points:
        raise FrameInputError(f"radar PointCloud2 has {n} points, more than max_radar_points {max_points}")
    names = cloud.dtype.names or ()
    for name in RADAR_MSG_FIELDS:
        if name not in names:
            raise FrameInputError(f"PointCloud2 has no field '{name}' (fields: {', '.join(names) or 'none'})")
        if cloud.dtype[name].shape:
            raise FrameInputError(f"PointCloud2 field '{name}' has count {cloud.dtype[name].shape[0]}, expected 1")
    if default_filters and all(f in names for f in _FILTER_FIELDS):
        from imkd_ros.data.pcd import radar_default_mask

        cloud = cloud[radar_default_mask(cloud)]
    pts = np.empty((len(cloud), len(RADAR_MSG_FIELDS)), dtype=np.float32)
    for j, name in enumerate(RADAR_MSG_FIELDS):
        pts[:, j] = cloud[name]
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise FrameInputError(f"radar PointCloud2 has {int(bad.sum())} of {len(pts)} points with NaN/inf values")
    return pts


def check_image(image: np.ndarray, calibration: Calibration) -> None:
    """Raise :class:`FrameInputError` unless ``image`` ``(H, W, 3)`` matches the CameraInfo size ``(W, H)``."""
    w, h = calibration.image_size or (None, None)
    if image.shape[1] != w or image.shape[0] != h:
        raise FrameInputError(
            f"image size {image.shape[1]}x{image.shape[0]} does not match CameraInfo {w}x{h} ({calibration.channel})"
        )
    if image.size == 0:
        raise FrameInputError("image is empty")


def assemble_frame(
    stamp_ns: int,
    views: Sequence[tuple[int, np.ndarray | None, Calibration]],
    sweeps: Sequence[tuple[int, np.ndarray, Pose]],
    ego_pose_at: Callable[[int], Pose | None] | None = None,
    *,
    token: str = "",
) -> Frame:
    """A :class:`Frame` (ego frame at ``stamp_ns``) from camera images and radar sweeps.

    Args:
        stamp_ns: the reference camera's stamp (ns), the reference time.
        views: ``(stamp_ns, image (H, W, 3) uint8 RGB or None, calibration)`` per camera, the reference camera first
            (intrinsics from CameraInfo, the sensor -> ``base_link`` mounting from tf or the parameters).
        sweeps: ``(stamp_ns, points (N, 6) sensor frame, sensor_to_ego)`` per sweep, any radar, any order.
        ego_pose_at: ``stamp_ns -> ego -> fixed-frame pose`` (e.g. :meth:`PoseBuffer.lookup`). With poses at the
            reference stamp and a sweep's (or another camera's) stamp, it is moved ``sensor -> ego(its stamp) ->
            fixed -> ego(reference)`` as the reader does; otherwise the ego is taken as not moving between the two.
        token: the Frame's token.
    """
    ref_pose = ego_pose_at(stamp_ns) if ego_pose_at is not None else None

    def to_ref(t: int, sensor_to_ego: Pose) -> Pose:
        at = ego_pose_at(t) if ref_pose is not None and ego_pose_at is not None else None
        return sweep_to_ref(sensor_to_ego, at, ref_pose)

    parts = [radar_sweep_to_ref(pts, to_ref(t, mount), lag_seconds(stamp_ns, t)) for t, pts, mount in sweeps]
    radar = np.concatenate(parts, axis=0) if parts else np.zeros((0, 7), np.float32)
    cameras = tuple(
        cal if i == 0 else replace(cal, sensor_to_ego=to_ref(t, cal.sensor_to_ego))
        for i, (t, _, cal) in enumerate(views)
    )
    images = tuple(image for _, image, _ in views)
    return Frame(
        token=token,
        timestamp=int(stamp_ns // 1000),
        scene="",
        images=None if any(image is None for image in images) else images,
        cameras=cameras,
        radar=radar,
        lidar=None,
        ego_pose=ref_pose if ref_pose is not None else Pose.identity(),
    )


@dataclass(frozen=True)
class AssembledFrame:
    """A frame ready for the model.

    Attributes:
        stamp: the camera stamp (ns): the output header's stamp.
        frame: the :class:`Frame` (ego frame at ``stamp``; ``ego_pose`` ego -> the poses' fixed frame, identity
            without poses).
        sweeps: radar name -> stamps (ns) of the sweeps used, key sweep first.
        extra: what :meth:`FrameAssembler.add_camera` was given with the image (e.g. the node's timing).
    """

    stamp: int
    frame: Frame
    sweeps: dict[str, tuple[int, ...]]
    extra: Any = None


class FrameAssembler:
    """Camera + radar (+ ego poses) -> frames, as the detector node pairs and assembles them (module docstring).

    Args:
        radar_to_base: radar name -> its mounting (sensor -> ``base_link``, the default of :meth:`add_radar`); the
            names are the sync's sources. A radar without a known mounting may be given as None (the node, which
            looks mountings up in tf per message).
        sync: :class:`~imkd_ros.pipeline.sync.CameraRadarSync`'s keyword settings: ``max_delay``, ``sweeps``,
            ``max_sweep_age`` (the node's ``max_camera_radar_delay``, ``radar_sweeps``, ``max_sweep_age``), ``cameras``
            (the reference camera first), ``camera_lead``, ``camera_window`` (``camera_set_lead``,
            ``camera_set_window``); its defaults where not given.
        max_radar_points, radar_default_filters: :func:`radar_cloud_points` settings.
        use_ego_pose: move earlier sweeps with the ego poses given to :meth:`add_pose`.

    Raises:
        ValueError: a bad sync setting or no radar.
    """

    def __init__(
        self,
        radar_to_base: Mapping[str, Pose | None],
        *,
        max_radar_points: int = 5000,
        radar_default_filters: bool = True,
        use_ego_pose: bool = True,
        **sync: Any,
    ) -> None:
        self.radar_to_base = {k: v for k, v in radar_to_base.items() if v is not None}
        self.sync = CameraRadarSync(list(radar_to_base), **sync)
        self.poses = PoseBuffer()
        self.calibrations: dict[str, Calibration] = {}
        self.max_radar_points = int(max_radar_points)
        self.radar_default_filters = bool(radar_default_filters)
        self.use_ego_pose = bool(use_ego_pose)

    @classmethod
    def from_config(cls, config: DetectorNodeConfig, radar_to_base: Mapping[str, Pose | None]) -> FrameAssembler:
        """With the detector node's settings (``cameras``, ``camera_set_lead``, ``camera_set_window``,
        ``max_camera_radar_delay``, ``radar_sweeps``, ``max_sweep_age``, ``max_radar_points``,
        ``radar_default_filters``, ``use_ego_pose``)."""
        return cls(
            radar_to_base,
            max_delay=config.max_camera_radar_delay,
            sweeps=config.radar_sweeps,
            max_sweep_age=config.max_sweep_age,
            max_radar_points=config.max_radar_points,
            radar_default_filters=config.radar_default_filters,
            use_ego_pose=config.use_ego_pose,
            cameras=list(config.cameras),
            camera_lead=config.camera_set_lead,
            camera_window=config.camera_set_window,
        )

    @property
    def radars(self) -> tuple[str, ...]:
        return self.sync.sources

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.sync.cameras

    @property
    def calibration(self) -> Calibration | None:
        """The reference camera's calibration (None before its first CameraInfo)."""
        return self.calibrations.get(self.cameras[0])

    # -- inputs ------------------------------------------------------------------------------------------------
    def set_calibration(self, calibration: Calibration, camera: str | None = None) -> None:
        """A camera's calibration from its latest CameraInfo (intrinsics, image size, mounting); ``camera``: its
        name in ``cameras`` (default: the reference camera)."""
        self.calibrations[self.cameras[0] if camera is None else camera] = calibration

    def add_pose(self, stamp: int, pose: Pose) -> None:
        """An ego pose (``base_link`` -> a fixed frame) at ``stamp`` (ns)."""
        self.poses.add(stamp, pose)

    def add_radar(
        self, name: str, stamp: int, cloud: np.ndarray, sensor_to_ego: Pose | None = None
    ) -> tuple[AssembledFrame | None, list[SyncEvent]]:
        """A radar sweep of ``name`` (structured cloud ``(N,)``, sensor frame) stamped ``stamp`` (ns), mounted at
        ``sensor_to_ego`` (default: the ``radar_to_base`` given at construction; the node passes the mounting it
        looked up in tf for the message's frame). The mounting travels with the sweep.

        Returns:
            The frame it completes (or None) and what the synchroniser dropped.

        Raises:
            FrameInputError: the cloud is unusable (:func:`radar_cloud_points`), or no mounting is known for
                ``name``; nothing was buffered.
        """
        if sensor_to_ego is None:
            sensor_to_ego = self.radar_to_base.get(name)
            if sensor_to_ego is None:
                raise FrameInputError(f"radar {name!r} has no mounting (radar_to_base)")
        points = radar_cloud_points(cloud, max_points=self.max_radar_points, default_filters=self.radar_default_filters)
        synced, events = self.sync.add_radar(name, int(stamp), (points, sensor_to_ego))
        return self._emit(synced, events), events

    def add_camera(
        self, stamp: int, image: np.ndarray, extra: Any = None, camera: str | None = None
    ) -> tuple[AssembledFrame | None, list[SyncEvent]]:
        """An image ``(H, W, 3)`` uint8 RGB of ``camera`` (default: the reference camera) stamped ``stamp`` (ns);
        ``extra`` travels with it to the :class:`AssembledFrame` (the frame's is the set's latest camera's).

        Returns:
            The frame it completes (or None) and what the synchroniser dropped.

        Raises:
            FrameInputError: an unknown camera, no CameraInfo of it yet, or an image whose size does not match it;
                nothing was buffered.
        """
        name = self.cameras[0] if camera is None else camera
        if name not in self.cameras:
            raise FrameInputError(f"camera {name!r} is not one of {', '.join(self.cameras)}")
        calibration = self.calibrations.get(name)
        if calibration is None:
            raise FrameInputError("no CameraInfo received yet" + ("" if len(self.cameras) == 1 else f" for {name}"))
        check_image(image, calibration)
        synced, events = self.sync.add_camera(int(stamp), (image, calibration, extra), camera=name)
        return self._emit(synced, events), events

    # -- output ------------------------------------------------------------------------------------------------
    def _emit(self, synced: SyncedSet | None, events: list[SyncEvent]) -> AssembledFrame | None:
        if any(e.kind == "time_reset" for e in events):
            self.poses.clear()  # a new timeline: the poses of the old one would be interpolated against it
        if synced is None:
            return None
        views = [(v.stamp, v.data[0], v.data[1]) for v in synced.cameras.values()]
        extra = max(synced.cameras.values(), key=lambda v: v.stamp).data[2]
        sweeps = [(s.stamp, s.data[0], s.data[1]) for lst in synced.radar.values() for s in lst]
        lookup = self.poses.lookup if self.use_ego_pose and len(self.poses) else None
        frame = assemble_frame(synced.stamp, views, sweeps, lookup)
        used = {name: tuple(s.stamp for s in lst) for name, lst in synced.radar.items()}
        return AssembledFrame(synced.stamp, frame, used, extra)


# ------------------------------------------------------------------------------------------------------- markers

#: ``visualization_msgs/Marker`` type constants used.
MARKER_ARROW, MARKER_LINE_LIST, MARKER_TEXT = 0, 5, 9

#: RViz colour (r, g, b) of each class, in :data:`imkd_ros.core.classes.CLASSES` order.
CLASS_RGB: tuple[tuple[float, float, float], ...] = (
    (0.12, 0.47, 0.71),  # car
    (1.00, 0.50, 0.05),  # truck
    (0.55, 0.34, 0.29),  # construction_vehicle
    (0.84, 0.15, 0.16),  # bus
    (0.58, 0.40, 0.74),  # trailer
    (0.50, 0.50, 0.50),  # barrier
    (0.89, 0.47, 0.76),  # motorcycle
    (0.74, 0.74, 0.13),  # bicycle
    (0.17, 0.63, 0.17),  # pedestrian
    (0.09, 0.75, 0.81),  # traffic_cone
)


@dataclass(frozen=True)
class MarkerSpec:
    """One ``ADD`` marker, message-free: namespace, id, type (:data:`MARKER_LINE_LIST`, ...), ``position`` (3,)
    of its pose (orientation identity), ``scale`` (3,), ``color`` (r, g, b, a), ``points`` ``(K, 3)`` (m, the
    boxes' frame) and ``text``."""

    ns: str
    id: int
    type: int
    position: tuple[float, float, float]
    scale: tuple[float, float, float]
    color: tuple[float, float, float, float]
    points: tuple[tuple[float, float, float], ...] = ()
    text: str = ""


def marker_specs(boxes: Boxes, *, min_speed: float = 0.5, text_size: float = 1.0) -> list[MarkerSpec]:
    """The RViz markers of ``boxes`` in BEV (to follow a ``DELETEALL``): per box a ``LINE_LIST`` outline of its
    footprint at the centre height with a heading tick (namespace ``boxes``), a ``TEXT_VIEW_FACING`` label
    ``"<class> <score>"`` above it (``labels``), and, when the speed is finite and above ``min_speed`` m/s, an
    ``ARROW`` from the centre to centre + velocity x 1 s (``velocity``). Marker ids are the box index."""
    from imkd_ros.core.classes import CLASSES

    out: list[MarkerSpec] = []
    corners = boxes.corners()[:, :4, :] if len(boxes) else np.zeros((0, 4, 3))  # bottom face, CCW
    for i in range(len(boxes)):
        label, c = int(boxes.label[i]), boxes.center[i]
        x, y, z = float(c[0]), float(c[1]), float(c[2])
        rgba = (*CLASS_RGB[label % len(CLASS_RGB)], 1.0)
        ring = [(float(p[0]), float(p[1]), z) for p in corners[i]]
        front = (0.5 * (ring[0][0] + ring[3][0]), 0.5 * (ring[0][1] + ring[3][1]), z)
        points = (ring[0], ring[1], ring[1], ring[2], ring[2], ring[3], ring[3], ring[0], (x, y, z), front)
        out.append(MarkerSpec("boxes", i, MARKER_LINE_LIST, (0.0, 0.0, 0.0), (0.12, 0.0, 0.0), rgba, points))
        above = (x, y, z + 0.5 * float(boxes.size[i, 2]) + 0.6)
        text = f"{CLASSES[label]} {boxes.score[i]:.2f}"
        out.append(MarkerSpec("labels", i, MARKER_TEXT, above, (0.0, 0.0, text_size), (1.0, 1.0, 1.0, 1.0), (), text))
        v = boxes.velocity[i]
        if np.isfinite(v).all() and float(np.hypot(v[0], v[1])) > min_speed:
            tip = (float(c[0] + v[0]), float(c[1] + v[1]), z)
            # scale: shaft diameter, head diameter, head length
            out.append(
                MarkerSpec("velocity", i, MARKER_ARROW, (0.0, 0.0, 0.0), (0.15, 0.4, 0.4), rgba, ((x, y, z), tip))
            )
    return out
