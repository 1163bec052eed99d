"""Procedural driving scenarios: a straight multi-lane road, the ego vehicle, actors and static background.

A :class:`Scenario` is a pure function of time: every actor moves at constant velocity along a straight line, all
vehicles in one lane share one speed (so they never collide), so any sensor can ask for the state of the world at its
own timestamp. Sensors (``camera.py``, ``lidar.py``, ``radar.py``) and the writer (``writer.py``) only read it.

Road frame: x along the road, y to the left, z up, origin where the ego starts (on the ground, ``z = 0``). Layout
across the road (|y| in metres): four 3.5 m lanes (two each way, right-hand traffic: ego's direction at y < 0) up to
7.0, a parking strip 7.0-9.5, sidewalk 9.5-13.0, building facades from 14.0. The global frame is the road frame
rotated by ``road_heading`` about z and moved by ``road_origin``; the ground is the plane ``z = 0`` in both.

Boxes rest 5 cm above the ground (``GROUND_CLEARANCE``) so that ground returns never sit on a box's bottom face
(the devkit's ``points_in_box`` would count them unpredictably).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes

__all__ = [
    "WEATHERS",
    "GROUND_CLEARANCE",
    "LANE_WIDTH",
    "ClassProfile",
    "CLASS_PROFILES",
    "Actors",
    "Scenario",
    "make_scenario",
]

WEATHERS: tuple[str, ...] = ("clear", "rain", "fog", "night")
GROUND_CLEARANCE = 0.05
LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 7.0
PARKING_Y = 8.25
SIDEWALK_Y = (9.5, 13.0)
FACADE_Y = 14.0


@dataclass(frozen=True)
class ClassProfile:
    """Physical look of a class to every sensor.

    Attributes:
        size: mean (w, l, h) in metres (nuScenes averages).
        reflectivity: LiDAR diffuse reflectance 0-1 (retro-reflective cones and barrier stripes are high).
        rcs: mean radar cross-section in dBsm, seen from the side; the front/back aspect is lower.
        color: base RGB 0-255 of the body.
    """

    size: tuple[float, float, float]
    reflectivity: float
    rcs: float
    color: tuple[int, int, int]


CLASS_PROFILES: dict[str, ClassProfile] = {
    "car": ClassProfile((1.95, 4.62, 1.73), 0.40, 10.0, (150, 30, 30)),
    "truck": ClassProfile((2.52, 6.94, 2.85), 0.50, 20.0, (220, 220, 225)),
    "construction_vehicle": ClassProfile((2.82, 6.37, 3.19), 0.60, 18.0, (235, 180, 20)),
    "bus": ClassProfile((2.94, 11.0, 3.47), 0.45, 22.0, (40, 90, 190)),
    "trailer": ClassProfile((2.90, 10.0, 3.87), 0.55, 20.0, (170, 170, 160)),
    "barrier": ClassProfile((2.50, 0.50, 0.98), 0.70, 5.0, (240, 240, 240)),
    "motorcycle": ClassProfile((0.77, 2.11, 1.47), 0.35, 3.0, (30, 30, 30)),
    "bicycle": ClassProfile((0.60, 1.70, 1.28), 0.25, 0.0, (20, 130, 60)),
    "pedestrian": ClassProfile((0.67, 0.73, 1.77), 0.20, -5.0, (70, 60, 110)),
    "traffic_cone": ClassProfile((0.41, 0.41, 1.07), 0.85, -8.0, (250, 100, 10)),
}

_MOVING = {"car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle"}


@dataclass(frozen=True)
class Actors:
    """State of the annotated actors (or of the background structures) at one instant.

    Attributes:
        boxes: :class:`Boxes` in the frame named by ``boxes.frame`` (``"global"`` or ``"ego"``), with velocity
            over ground (rotated into that frame), label, score 1, and ``tokens`` = instance ids (``"inst-<n>"``).
        reflectivity: ``(N,)`` LiDAR reflectance 0-1 per actor.
        rcs: ``(N,)`` radar cross-section (dBsm, side aspect) per actor.
        color: ``(N, 3)`` uint8 body colour per actor.
        attribute: per actor nuScenes attribute name, or None where the class has none.
    """

    boxes: Boxes
    reflectivity: np.ndarray
    rcs: np.ndarray
    color: np.ndarray
    attribute: list[str | None]

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class _Track:
    label: int
    size: np.ndarray  # (3,) w, l, h
    xy0: np.ndarray  # (2,) road frame at t = 0
    yaw: float  # road frame
    speed: float  # along yaw, m/s
    reflectivity: float
    rcs: float
    color: np.ndarray  # (3,) uint8
    attribute: str | None


@dataclass(frozen=True)
class Scenario:
    """One scene: road, ego trajectory, actor tracks and background, all deterministic functions of time.

    Times ``t`` are seconds since the scene start (``start_us``, microseconds).

    Attributes:
        name: scene name, e.g. ``"scene-0003"``.
        index: scene index in the dataset.
        weather: one of :data:`WEATHERS`.
        start_us: timestamp of ``t = 0`` in microseconds.
        duration: scene length in seconds.
        road_heading: yaw of the road's +x in the global frame.
        road_origin: ``(3,)`` global position of the road frame origin.
        ego_y: lateral position of the ego lane centre (road frame).
        ego_speed: ego speed along the road (m/s, constant).
        tracks: actor tracks (annotated).
        background: static unannotated structures as Boxes in the road frame (facades, poles).
        seed: the scene's own seed (derived from the dataset seed and the index), for sensor noise.
    """

    name: str
    index: int
    weather: str
    start_us: int
    duration: float
    road_heading: float
    road_origin: np.ndarray
    ego_y: float
    ego_speed: float
    tracks: tuple[_Track, ...]
    background: Boxes
    seed: int

    # -- frames -------------------------------------------------------------------------------------------------
    @property
    def road_to_global(self) -> Pose:
        return Pose.from_yaw(self.road_heading, self.road_origin)

    def ego_pose(self, t: float) -> Pose:
        """Ego -> global at time ``t``."""
        return self.road_to_global @ Pose.from_yaw(0.0, [self.ego_speed * t, self.ego_y, 0.0])

    def ego_velocity(self, t: float) -> np.ndarray:
        """Ego velocity ``(3,)`` in the global frame (m/s)."""
        return self.road_to_global.rotate(np.array([[self.ego_speed, 0.0, 0.0]]))[0]

    def timestamp(self, t: float) -> int:
        return self.start_us + int(round(t * 1e6))

    # -- actors ---------------------------------------------------------------------------------------------------
    def actors(self, t: float, frame: str = "global") -> Actors:
        """All actor states at time ``t`` in ``"global"``, ``"road"`` or ``"ego"`` (ego at time ``t``)."""
        n = len(self.tracks)
        if n == 0:
            road = Boxes.empty("road")
            refl = rcs = np.zeros(0)
            color = np.zeros((0, 3), np.uint8)
            attrs: list[str | None] = []
        else:
            yaw = np.array([tr.yaw for tr in self.tracks])
            speed = np.array([tr.speed for tr in self.tracks])
            heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
            xy = np.stack([tr.xy0 for tr in self.tracks]) + heading * (speed * t)[:, None]
            size = np.stack([tr.size for tr in self.tracks])
            center = np.concatenate([xy, (size[:, 2:3] / 2.0 + GROUND_CLEARANCE)], axis=1)
            road = Boxes(
                center,
                size,
                yaw,
                heading * speed[:, None],
                [tr.label for tr in self.tracks],
                np.ones(n),
                "road",
                [f"inst-{i}" for i in range(n)],
            )
            refl = np.array([tr.reflectivity for tr in self.tracks])
            rcs = np.array([tr.rcs for tr in self.tracks])
            color = np.stack([tr.color for tr in self.tracks]).astype(np.uint8)
            attrs = [tr.attribute for tr in self.tracks]
        boxes = self._from_road(road, t, frame)
        return Actors(boxes, refl, rcs, color, attrs)

    def background_in(self, t: float, frame: str = "ego") -> Boxes:
        """Static background boxes in ``"global"``, ``"road"`` or ``"ego"`` (ego at time ``t``)."""
        return self._from_road(self.background, t, frame)

    def _from_road(self, road: Boxes, t: float, frame: str) -> Boxes:
        if frame == "road":
            return road
        glob = road.transform(self.road_to_global, "global")
        if frame == "global":
            return glob
        if frame == "ego":
            return glob.transform(self.ego_pose(t).inverse(), "ego")
        raise ValueError(f"unknown frame {frame!r}: expected 'global', 'road' or 'ego'")


# ---------------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------------


def _jitter_size(rng: np.random.Generator, cls: str) -> np.ndarray:
    return np.asarray(CLASS_PROFILES[cls].size) * rng.uniform(0.9, 1.1, size=3)


def _color(rng: np.random.Generator, cls: str) -> np.ndarray:
    base = np.asarray(CLASS_PROFILES[cls].color, dtype=np.float64)
    if cls in ("car", "pedestrian"):  # cars and clothes come in many colours
        base = rng.choice([base, rng.uniform(20, 235, size=3)], p=[0.3, 0.7]) if rng.random() < 0.7 else base
    return np.clip(base + rng.normal(0, 12, size=3), 0, 255).astype(np.uint8)


def _track(rng: np.random.Generator, cls: str, xy: tuple[float, float], yaw: float, speed: float) -> _Track:
    prof = CLASS_PROFILES[cls]
    moving = speed > 0.3
    if cls in ("car", "truck", "bus", "trailer", "construction_vehicle"):
        attr: str | None = "vehicle.moving" if moving else "vehicle.parked"
    elif cls in ("motorcycle", "bicycle"):
        attr = "cycle.with_rider" if moving else "cycle.without_rider"
    elif cls == "pedestrian":
        attr = "pedestrian.moving" if moving else "pedestrian.standing"
    else:
        attr = None
    return _Track(
        label=CLASSES.index(cls),
        size=_jitter_size(rng, cls),
        xy0=np.asarray(xy, dtype=np.float64),
        yaw=float(yaw),
        speed=float(speed),
        reflectivity=float(np.clip(prof.reflectivity * rng.uniform(0.85, 1.15), 0.02, 1.0)),
        rcs=float(prof.rcs + rng.normal(0, 2.0)),
        color=_color(rng, cls),
        attribute=attr,
    )


def _fill_line(
    rng: np.random.Generator, x_lo: float, x_hi: float, lengths: list[float], gap: tuple[float, float]
) -> list[float]:
    """Centres along a line from ``x_lo`` to ``x_hi`` for objects of the given lengths, with random gaps."""
    xs, x = [], x_lo + rng.uniform(0, gap[1])
    for length in lengths:
        c = x + length / 2.0
        if c + length / 2.0 > x_hi:
            break
        xs.append(c)
        x = c + length / 2.0 + rng.uniform(*gap)
    return xs


def _moving_traffic(rng: np.random.Generator, x_lo: float, x_hi: float, ego_y: float, ego_speed: float) -> list[_Track]:
    """Moving traffic: one speed per lane, so lane-mates never collide. Lanes: y = -5.25, -1.75 (ego's direction),
    +1.75, +5.25 (oncoming). The ego's own lane keeps a clear gap around the ego."""
    tracks: list[_Track] = []
    for lane_y in (-5.25, -1.75, 1.75, 5.25):
        direction = 1.0 if lane_y < 0 else -1.0
        lane_speed = float(rng.uniform(3.0, 13.0)) if rng.random() > 0.1 else 0.0
        classes = rng.choice(
            ["car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle"],
            size=12,
            p=[0.55, 0.12, 0.07, 0.05, 0.04, 0.09, 0.08],
        )
        sizes = [_jitter_size(rng, c) for c in classes]
        xs = _fill_line(rng, x_lo, x_hi, [s[1] for s in sizes], gap=(6.0, 30.0))
        for c, x in zip(classes, xs, strict=False):
            c = str(c)
            speed = lane_speed
            if lane_y == ego_y:
                # Keep the ego lane clear around the ego for the whole scene (same speed -> static gap).
                speed = ego_speed
                if -8.0 < x < 25.0:
                    continue
            if lane_y in (-1.75, 1.75) and c == "bicycle":
                continue  # bicycles keep to the outer lanes
            tr = _track(rng, c, (x, lane_y + rng.normal(0, 0.15)), 0.0 if direction > 0 else np.pi, speed)
            tracks.append(tr)
    return tracks


def _parked(rng: np.random.Generator, x_lo: float, x_hi: float) -> list[_Track]:
    """Parked vehicles along both curbs, with construction zones of barriers and cones."""
    tracks: list[_Track] = []
    for side in (-1.0, 1.0):
        classes = rng.choice(
            ["car", "truck", "trailer", "construction_vehicle", "zone", "gap"],
            size=14,
            p=[0.5, 0.07, 0.05, 0.05, 0.13, 0.2],
        )
        lengths = [12.0 if c == "zone" else (8.0 if c == "gap" else _jitter_size(rng, str(c))[1]) for c in classes]
        xs = _fill_line(rng, x_lo, x_hi, lengths, gap=(1.0, 6.0))
        for c, x, length in zip(classes, xs, lengths, strict=False):
            c = str(c)
            if c == "gap":
                continue
            if c == "zone":
                for k in range(int(rng.integers(3, 7))):
                    xk = x - length / 2 + 1.0 + k * (length - 2.0) / 6.0
                    kind = "barrier" if rng.random() < 0.4 else "traffic_cone"
                    yaw = np.pi / 2 if kind == "barrier" else rng.uniform(-np.pi, np.pi)
                    tracks.append(_track(rng, kind, (xk, side * (ROAD_HALF_WIDTH + 0.6)), yaw, 0.0))
                continue
            yaw = (0.0 if side < 0 else np.pi) + rng.normal(0, 0.05)
            if rng.random() < 0.2:
                yaw += np.pi  # parked facing the other way
            tracks.append(_track(rng, c, (x, side * PARKING_Y + rng.normal(0, 0.2)), yaw, 0.0))
    return tracks


def _sidewalks(rng: np.random.Generator, x_lo: float, x_hi: float) -> list[_Track]:
    """Pedestrians on the sidewalks (walking along it or standing), a few parked bicycles/motorcycles."""
    tracks: list[_Track] = []
    for side in (-1.0, 1.0):
        n_ped = int(rng.integers(4, 14))
        for _ in range(n_ped):
            x = rng.uniform(x_lo, x_hi)
            y = side * rng.uniform(*SIDEWALK_Y)
            if rng.random() < 0.65:
                d = 1.0 if rng.random() < 0.5 else -1.0
                tracks.append(_track(rng, "pedestrian", (x, y), 0.0 if d > 0 else np.pi, rng.uniform(0.8, 1.8)))
            else:
                tracks.append(_track(rng, "pedestrian", (x, y), rng.uniform(-np.pi, np.pi), 0.0))
        for _ in range(int(rng.integers(0, 4))):
            c = "bicycle" if rng.random() < 0.6 else "motorcycle"
            x = rng.uniform(x_lo, x_hi)
            tracks.append(_track(rng, c, (x, side * (SIDEWALK_Y[0] + 0.5)), side * np.pi / 2, 0.0))
    return tracks


def _facades(rng: np.random.Generator, x_lo: float, x_hi: float) -> Boxes:
    """Background: facades along both sides with gaps (streets), unannotated."""
    centers, sizes, yaws = [], [], []
    for side in (-1.0, 1.0):
        x = x_lo - 20.0
        while x < x_hi + 60.0:
            length = float(rng.uniform(10.0, 40.0))
            depth = float(rng.uniform(8.0, 15.0))
            height = float(rng.uniform(6.0, 25.0))
            centers.append([x + length / 2, side * (FACADE_Y + depth / 2), height / 2])
            sizes.append([depth, length, height])
            yaws.append(0.0)
            x += length + (float(rng.uniform(8.0, 14.0)) if rng.random() < 0.3 else 0.5)
    nb = len(centers)
    background = Boxes(
        np.asarray(centers),
        np.asarray(sizes),
        np.asarray(yaws),
        np.zeros((nb, 2)),
        np.zeros(nb, np.int64),
        np.ones(nb),
        "road",
    )
    return background


def make_scenario(seed: int, index: int, weather: str, duration: float, start_us: int | None = None) -> Scenario:
    """Generate scene ``index`` of a dataset with seed ``seed``; deterministic in (seed, index, weather, duration).

    Args:
        seed: dataset seed.
        index: scene index (0-based); the scene name is ``scene-{index:04d}``.
        weather: one of :data:`WEATHERS`.
        duration: scene length in seconds (the ego drives for this long).
        start_us: timestamp of the scene start; default a fixed epoch plus one hour per scene.
    """
    if weather not in WEATHERS:
        raise ValueError(f"unknown weather {weather!r}: expected one of {', '.join(WEATHERS)}")
    scene_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    rng = np.random.default_rng(scene_seed)
    ego_speed = 0.0 if rng.random() < 0.15 else float(rng.uniform(4.0, 12.0))
    ego_y = -LANE_WIDTH / 2.0
    travel = ego_speed * duration
    x_lo, x_hi = -70.0, travel + 90.0
    tracks = _moving_traffic(rng, x_lo, x_hi, ego_y, ego_speed)
    tracks += _parked(rng, x_lo, x_hi)
    tracks += _sidewalks(rng, x_lo, x_hi)
    tracks = _drop_overlaps(tracks, duration)
    background = _facades(rng, x_lo, x_hi)
    origin = np.array([rng.uniform(300, 700), rng.uniform(300, 700), 0.0])  # map PNGs need x, y > 0
    return Scenario(
        name=f"scene-{index:04d}",
        index=index,
        weather=weather,
        start_us=start_us if start_us is not None else 1_533_000_000_000_000 + index * 3_600_000_000,
        duration=duration,
        road_heading=float(rng.uniform(-np.pi, np.pi)),
        road_origin=origin,
        ego_y=ego_y,
        ego_speed=ego_speed,
        tracks=tuple(tracks),
        background=background,
        seed=scene_seed,
    )


def _drop_overlaps(tracks: list[_Track], duration: float) -> list[_Track]:
    """Remove actors whose footprint overlaps an earlier actor's at the start or end of the scene (static and
    same-lane actors cannot collide in between)."""
    kept: list[_Track] = []
    for t in (0.0, duration):
        kept = []
        for tr in tracks:
            if not any(_overlap(tr, other, t) for other in kept):
                kept.append(tr)
        tracks = kept
    return kept


def _overlap(a: _Track, b: _Track, t: float) -> bool:
    pa = a.xy0 + a.speed * t * np.array([np.cos(a.yaw), np.sin(a.yaw)])
    pb = b.xy0 + b.speed * t * np.array([np.cos(b.yaw), np.sin(b.yaw)])
    ra = 0.5 * np.hypot(a.size[0], a.size[1]) + 0.3
    rb = 0.5 * np.hypot(b.size[0], b.size[1]) + 0.3
    return bool(np.hypot(*(pa - pb)) < ra + rb) and _sat_overlap(pa, a, pb, b)


def _sat_overlap(pa: np.ndarray, a: _Track, pb: np.ndarray, b: _Track) -> bool:
    """Separating-axis test of two oriented rectangles (footprints grown by 0.2 m)."""

    def corners(p: np.ndarray, tr: _Track) -> np.ndarray:
        c, s = np.cos(tr.yaw), np.sin(tr.yaw)
        hl, hw = tr.size[1] / 2 + 0.2, tr.size[0] / 2 + 0.2
        local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
        return local @ np.array([[c, s], [-s, c]]) + p

    ca, cb = corners(pa, a), corners(pb, b)
    for yaw in (a.yaw, a.yaw + np.pi / 2, b.yaw, b.yaw + np.pi / 2):
        axis = np.array([np.cos(yaw), np.sin(yaw)])
        qa, qb = ca @ axis, cb @ axis
        if qa.max() < qb.min() or qb.max() < qa.min():
            return False
    return True
