"""LIDAR_TOP simulator: a 32-beam spinning LiDAR (nuScenes' Velodyne HDL-32E) ray-cast against the synthetic world.

Every sweep fires 32 beams (elevations -30.67 to +10.67 deg in equal steps, ring 0 the lowest) at 1080 azimuths
(one revolution at 20 Hz) from the sensor origin against the actor boxes, the background facades and the ground
plane ``z = 0`` (ego frame). The nearest hit of each ray becomes a point unless the weather or the target's
reflectance loses it; points are returned in the SENSOR frame (nuScenes' LIDAR_TOP: x right, y forward, z up).

Physics, simplified:
- reflectance per material: actors carry their own (``Actors.reflectivity``), facades 0.3, the road surface by its
  markings (asphalt dark, lane paint bright; see :func:`ground_material`);
- intensity (0-255) = 255 x reflectance x (0.25 + 0.75 cos(incidence)) x atmospheric loss ``exp(-2 a r)``, with 8 %
  multiplicative noise, rounded to integers as in nuScenes;
- the range limit grows with reflectance (dark asphalt is lost sooner than a retro-reflective cone); fog shortens it
  strongly and adds dropouts and a few near-range echoes from droplets;
- range noise along the ray; a hit on a box is moved 1-2 cm into the box along the ray (noise included) and never
  past the box's far side, so that every point that hit an actor lies inside that actor's box;
- pedestrians, cones and two-wheelers are not solid boxes: :func:`thin_shape` (shared with the camera) keeps only the
  rays that meet their silhouette inside the box and places the point at the shape's depth.

Also home of the helpers shared by the three sensors: the ray/box slab test :func:`slab_intersect`, the road
surface layout :func:`ground_material` and the thin-object shapes :func:`thin_shape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.data.synth.weather import weather_effects
from imkd_ros.data.synth.world import Scenario

__all__ = [
    "BEAM_ELEVATIONS_DEG",
    "AZIMUTH_STEPS",
    "MATERIALS",
    "MATERIAL_REFLECTIVITY",
    "FACADE_REFLECTIVITY",
    "SOURCE_GROUND",
    "SOURCE_BACKGROUND",
    "SOURCE_ECHO",
    "THIN_CLASSES",
    "LidarSweep",
    "SlabHits",
    "slab_intersect",
    "ground_material",
    "axis_distance",
    "thin_shape",
    "lidar_sweep",
]

#: Elevation of each beam (deg), index = ring.
BEAM_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)
#: Azimuth steps per revolution.
AZIMUTH_STEPS = 1080

#: Road-surface material codes returned by :func:`ground_material`, in code order.
MATERIALS: tuple[str, ...] = (
    "asphalt",
    "white_paint",
    "yellow_paint",
    "parking_asphalt",
    "curb",
    "sidewalk",
    "verge",
    "lot",
)
#: LiDAR reflectance of each road-surface material (index = material code).
MATERIAL_REFLECTIVITY = np.array([0.08, 0.55, 0.45, 0.09, 0.25, 0.20, 0.15, 0.10])
#: LiDAR reflectance of building facades.
FACADE_REFLECTIVITY = 0.30

#: :attr:`LidarSweep.source` codes of points that did not hit an actor.
SOURCE_GROUND = -1
SOURCE_BACKGROUND = -2
SOURCE_ECHO = -3

_CLEAR_RANGE_M = 100.0  # geometric reach used for visibility (weather-independent)
_INTO_BOX_M = 0.015  # a box hit is moved this far into the box along the ray (before noise)
_INSIDE_MARGIN_M = 0.01  # and kept at least this far inside the box's near and far faces


@dataclass(frozen=True)
class LidarSweep:
    """One LiDAR revolution.

    Attributes:
        points: ``(N, 5)`` float32 in the sensor frame: x, y, z (m), intensity (0-255), ring (0-31, 0 = lowest beam).
        visibility: ``(n_actors,)`` float64 in [0, 1]: of the rays that would hit actor ``i`` within the clear-weather
            range if nothing else were there, the fraction whose first hit is actor ``i`` (0 where no ray reaches it).
            Weather losses (dropouts, range) do not count: it measures occlusion only.
        source: ``(N,)`` int32 per point: index of the actor it hit (>= 0), or :data:`SOURCE_GROUND`,
            :data:`SOURCE_BACKGROUND` (facades) or :data:`SOURCE_ECHO` (spurious echo from rain/fog droplets).
    """

    points: np.ndarray
    visibility: np.ndarray
    source: np.ndarray


@dataclass(frozen=True)
class SlabHits:
    """Result of :func:`slab_intersect`, arrays of the rays' broadcast shape.

    Attributes:
        t_near: ray parameter where the ray enters the box (``> t_far`` or NaN: no intersection of the line).
        t_far: ray parameter where it leaves.
        lo: the three per-axis entry parameters; the largest is the axis of the entry face.
    """

    t_near: np.ndarray
    t_far: np.ndarray
    lo: tuple[np.ndarray, np.ndarray, np.ndarray]

    def hit(self, t_max: float = np.inf) -> np.ndarray:
        """Boolean: the ray (from outside the box) enters it at ``0 < t_near <= t_max``."""
        return (self.t_near <= self.t_far) & (self.t_near > 0.0) & (self.t_near <= t_max)

    def axis(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Axis (0 = box x/length, 1 = box y/width, 2 = z) of the entry face, for the rays selected by ``mask``."""
        lo = self.lo if mask is None else tuple(a[mask] for a in self.lo)
        tn = self.t_near if mask is None else self.t_near[mask]
        return np.where(lo[0] >= tn, 0, np.where(lo[1] >= tn, 1, 2)).astype(np.int8)


def slab_intersect(
    origin: tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray],
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    half: tuple[float, float, float],
) -> SlabHits:
    """Ray / axis-aligned box intersection (slab test) in the box's own frame.

    Args:
        origin: ray origin (x, y, z) in the box frame (box centre at 0, x along its length); scalars or arrays that
            broadcast with the directions.
        dx, dy, dz: ray direction components in the box frame, any (broadcastable) shape; unit length makes ``t`` a
            distance in metres.
        half: half extents (l/2, w/2, h/2) in metres.
    """
    lo, hi = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(origin, (dx, dy, dz), half, strict=True):
            inv = 1.0 / d
            t1 = (-h - o) * inv
            t2 = (h - o) * inv
            lo.append(np.minimum(t1, t2))
            hi.append(np.maximum(t1, t2))
    t_near = np.maximum(np.maximum(lo[0], lo[1]), lo[2])
    t_far = np.minimum(np.minimum(hi[0], hi[1]), hi[2])
    return SlabHits(t_near, t_far, (lo[0], lo[1], lo[2]))


def _ground_lut() -> tuple[np.ndarray, np.ndarray]:
    """Material code and "dashed" flag per 1 cm bin of |y_road| from 0 to 20 m."""
    ay = (np.arange(2000) + 0.5) / 100.0
    code = np.full(ay.shape, MATERIALS.index("lot"), np.uint8)
    code[ay < 14.0] = MATERIALS.index("verge")
    code[ay < 13.0] = MATERIALS.index("sidewalk")
    code[ay < 9.5] = MATERIALS.index("curb")
    code[ay < 9.35] = MATERIALS.index("parking_asphalt")
    code[ay < 7.0] = MATERIALS.index("asphalt")
    code[np.abs(ay - 6.85) < 0.075] = MATERIALS.index("white_paint")
    dashed = np.abs(ay - 3.5) < 0.075
    code[dashed] = MATERIALS.index("white_paint")
    code[(ay > 0.05) & (ay < 0.2)] = MATERIALS.index("yellow_paint")
    return code, dashed


_GROUND_CODE, _GROUND_DASHED = _ground_lut()


def ground_material(x_road: np.ndarray, y_road: np.ndarray) -> np.ndarray:
    """Road-surface material code (index into :data:`MATERIALS`) at road-frame points ``(N,)`` each (m).

    Layout across the road (|y|): yellow double centre line, 3.5 m lanes with dashed white lines (3 m dashes every
    12 m), solid white edge lines at 6.85, parking strip to 9.35, curb, sidewalk 9.5-13, verge 13-14, lots beyond.
    """
    idx = np.minimum((np.abs(y_road) * 100.0).astype(np.int32), len(_GROUND_CODE) - 1)
    code = _GROUND_CODE[idx]
    sel = np.flatnonzero(_GROUND_DASHED[idx])
    if len(sel):
        gap = np.mod(np.asarray(x_road)[sel], 12.0) >= 3.0
        code[sel[gap]] = MATERIALS.index("asphalt")
    return code


def axis_distance(lx: np.ndarray, ly: np.ndarray, dlx: np.ndarray, dly: np.ndarray, half_len: float) -> np.ndarray:
    """Horizontal distance (m) between rays and a box's length axis, all in the box frame.

    Args:
        lx, ly: ``(M,)`` a point of each ray (e.g. where it enters the box).
        dlx, dly: ``(M,)`` the rays' direction, x and y components.
        half_len: the axis is the segment from ``(-half_len, 0)`` to ``(half_len, 0)``.

    Returns:
        ``(M,)`` distance between each ray's ground projection and the segment (0 where they cross).
    """
    inv = 1.0 / np.maximum(np.sqrt(dlx * dlx + dly * dly), 1e-6)
    base = -dlx * ly
    e1 = (base - dly * (-half_len - lx)) * inv
    e2 = (base - dly * (half_len - lx)) * inv
    return np.where(e1 * e2 <= 0.0, 0.0, np.minimum(np.abs(e1), np.abs(e2))).astype(np.result_type(lx, np.float32))


#: Labels drawn as thin shapes inside their boxes by :func:`thin_shape` (the other classes fill their box).
THIN_CLASSES: frozenset[int] = frozenset(
    CLASSES.index(c) for c in ("pedestrian", "traffic_cone", "bicycle", "motorcycle")
)


def thin_shape(
    label: int,
    size: np.ndarray,
    moving: bool,
    local: list[np.ndarray],
    ray: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The shape of a pedestrian, cone or two-wheeler inside its box, as seen along rays that enter the box.

    A pedestrian is two legs, a torso and a head around the box's vertical axis; a cone tapers from its square foot;
    a bicycle or motorcycle is thin along its length axis, with round wheels and, when moving, a rider. Camera and
    LiDAR share it, so both see the same silhouette, always inside the annotation box.

    Args:
        label: class index (one of :data:`THIN_CLASSES`).
        size: the box's (w, l, h) in metres.
        moving: whether the actor moves (two-wheelers: with rider).
        local: ``(M,)`` x, y, z of the rays' entry points into the box, box frame (m).
        ray: ``(M,)`` x and y components of the rays' unit directions, box frame.

    Returns:
        keep: ``(M,)`` bool, the ray meets the shape;
        depth: ``(M,)`` float, metres along the ray from the entry point to the shape (>= 0), for kept rays.
    """
    name = CLASSES[label]
    w, l, h = (float(x) for x in size)
    lx, ly, lz = local
    dlx, dly = ray
    up = lz + h / 2.0
    off = axis_distance(lx, ly, dlx, dly, 0.5 * l - 0.05 if name in ("bicycle", "motorcycle") else 0.0)
    if name == "pedestrian":
        hw = 0.5 * min(w, l)
        legs, head = up < 0.47 * h, up > 0.86 * h
        keep = np.where(legs, (off > 0.12 * hw) & (off < 0.75 * hw), off <= np.where(head, 0.32 * hw, hw))
        radius = 0.5 * hw
    elif name == "traffic_cone":
        keep = (off <= np.maximum(0.5 * w * (1.0 - 0.75 * up / h), 0.03)) | (up < 0.06)
        radius = 0.1
    else:  # bicycle, motorcycle
        wheels, rider = up < 0.62, up > 0.95
        keep = off <= np.where(rider, 0.22, np.where(wheels, 0.06, 0.1))
        if not moving:
            keep &= ~rider
        side = np.abs(dly) > 0.3 * np.sqrt(dlx * dlx + dly * dly)
        if side.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                lx0 = lx - ly * dlx / dly  # where the ray crosses the mid plane
            r = 0.31
            in_wheel = (np.abs(lx0) - (0.5 * l - r - 0.05)) ** 2 + (up - r) ** 2 <= r * r
            keep &= ~(side & wheels) | in_wheel
        radius = 0.05
    # depth: up to the ray's closest approach to the vertical centre axis, less the shape's radius
    s_closest = -(lx * dlx + ly * dly) / np.maximum(dlx * dlx + dly * dly, 1e-6)
    depth = np.maximum(s_closest - radius, 0.0)
    return keep, depth


@dataclass(frozen=True)
class _Rays:
    dirs: np.ndarray  # (32, A, 3) unit directions, sensor frame
    ego_dz: np.ndarray  # (32, A) z component in the ego frame
    height: float  # sensor height above the ground (ego z of the origin)


def _check_upright(calib: Calibration) -> None:
    r = calib.sensor_to_ego.rotation
    if not np.allclose(r[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise ValueError(f"{calib.channel}: the synthetic LiDAR/radar must be mounted upright (rotation about z only)")


@lru_cache(maxsize=4)
def _rays_cached(rotation: bytes, translation: bytes) -> _Rays:
    r = np.frombuffer(rotation).reshape(3, 3)
    t = np.frombuffer(translation)
    el = np.deg2rad(BEAM_ELEVATIONS_DEG)[:, None]
    az = (np.arange(AZIMUTH_STEPS) * (2.0 * np.pi / AZIMUTH_STEPS))[None, :]
    dirs = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1)
    ego_dz = dirs @ r[2]
    return _Rays(dirs, ego_dz, float(t[2]))


def _rays(calib: Calibration) -> _Rays:
    pose = calib.sensor_to_ego
    return _rays_cached(pose.rotation.tobytes(), pose.translation.tobytes())


def _azimuth_columns(boxes: Boxes, steps: int) -> list[np.ndarray]:
    """For boxes in the sensor frame, the azimuth columns (indices into ``steps`` per revolution) their footprints
    can cover; every column when the sensor is inside a footprint."""
    corners = boxes.corners()[:, :4, :2]  # (N, 4, 2)
    ang_c = np.arctan2(boxes.center[:, 1], boxes.center[:, 0])
    ang = np.arctan2(corners[..., 1], corners[..., 0])
    rel = (ang - ang_c[:, None] + np.pi) % (2.0 * np.pi) - np.pi
    lo = ang_c + rel.min(axis=1)
    hi = ang_c + rel.max(axis=1)
    inside = np.hypot(boxes.center[:, 0], boxes.center[:, 1]) <= 0.5 * np.hypot(boxes.size[:, 0], boxes.size[:, 1])
    step = 2.0 * np.pi / steps
    cols = []
    for i in range(len(boxes)):
        if inside[i] or hi[i] - lo[i] >= np.pi:
            cols.append(np.arange(steps))
        else:
            k0, k1 = int(np.floor(lo[i] / step)), int(np.ceil(hi[i] / step))
            cols.append(np.arange(k0, k1 + 1) % steps)
    return cols


def lidar_sweep(scn: Scenario, t: float, calib: Calibration, rng: np.random.Generator) -> LidarSweep:
    """Simulate one LiDAR revolution at scene time ``t`` (all rays at that instant).

    Args:
        scn: the scenario.
        t: scene time (s).
        calib: the LiDAR's calibration (mounted upright; ``RIG["LIDAR_TOP"]``).
        rng: source of all randomness (noise, dropouts).

    Returns:
        :class:`LidarSweep` with points ``(N, 5)`` in the sensor frame and per-actor visibility ``(n_actors,)``.
    """
    _check_upright(calib)
    fx = weather_effects(scn.weather)
    rays = _rays(calib)
    ego_to_sensor = calib.sensor_to_ego.inverse()
    actors = scn.actors(t, "ego")
    n_act = len(actors)
    boxes = actors.boxes.transform(ego_to_sensor, "sensor")
    bg = scn.background_in(t, "ego").transform(ego_to_sensor, "sensor")
    every = Boxes(
        np.concatenate([boxes.center, bg.center]),
        np.concatenate([boxes.size, bg.size]),
        np.concatenate([boxes.yaw, bg.yaw]),
        np.zeros((n_act + len(bg), 2)),
        np.zeros(n_act + len(bg), np.int64),
        np.ones(n_act + len(bg)),
        "sensor",
    )
    reflect = np.concatenate([actors.reflectivity, np.full(len(bg), FACADE_REFLECTIVITY)])
    every_label = actors.boxes.label
    moving = np.hypot(actors.boxes.velocity[:, 0], actors.boxes.velocity[:, 1]) > 0.3

    dirs = rays.dirs
    n_beams, n_az = dirs.shape[:2]
    # Ground first: every downward ray hits the plane z = 0 (ego) at t = height / -dz.
    with np.errstate(divide="ignore"):
        best_t = np.where(rays.ego_dz < -1e-6, rays.height / -rays.ego_dz, np.inf)
    best_t[best_t > _CLEAR_RANGE_M] = np.inf
    best_far = np.full_like(best_t, np.inf)
    best_id = np.full(best_t.shape, SOURCE_GROUND, np.int32)
    best_id[~np.isfinite(best_t)] = -99
    best_cos = np.where(np.isfinite(best_t), -rays.ego_dz, 0.0)
    would = np.zeros(n_act, np.int64)

    reach = np.hypot(every.center[:, 0], every.center[:, 1]) - 0.5 * np.hypot(every.size[:, 0], every.size[:, 1])
    candidates = np.flatnonzero(reach < _CLEAR_RANGE_M)
    columns = _azimuth_columns(every[candidates], n_az)
    for k, cols in zip(candidates, columns, strict=True):
        c, s = np.cos(every.yaw[k]), np.sin(every.yaw[k])
        d = dirs[:, cols]
        dlx = c * d[..., 0] + s * d[..., 1]
        dly = -s * d[..., 0] + c * d[..., 1]
        dlz = d[..., 2]
        cx, cy, cz = every.center[k]
        origin = (-(c * cx + s * cy), -(-s * cx + c * cy), -cz)
        l, w, h = every.size[k, 1], every.size[k, 0], every.size[k, 2]
        hits = slab_intersect(origin, dlx, dly, dlz, (l / 2.0, w / 2.0, h / 2.0))
        hit = hits.hit(_CLEAR_RANGE_M)
        if not hit.any():
            continue
        t_hit = hits.t_near
        cos_hit = None
        if k < n_act and int(every_label[k]) in THIN_CLASSES:
            # Thin objects: keep the rays that meet the shape inside the box, at the shape's depth.
            sel = np.nonzero(hit)  # (index tuple: these arrays need not be C-contiguous)
            tn = t_hit[sel]
            dx_s, dy_s = dlx[sel], dly[sel]
            local = [origin[0] + tn * dx_s, origin[1] + tn * dy_s, origin[2] + tn * dlz[sel]]
            keep, depth = thin_shape(int(every_label[k]), every.size[k], bool(moving[k]), local, (dx_s, dy_s))
            hit[sel[0][~keep], sel[1][~keep]] = False
            t_hit = t_hit.copy()
            t_hit[sel] = tn + np.minimum(depth, np.maximum(hits.t_far[sel] - tn - 0.02, 0.0))
            cos_hit = np.zeros(t_hit.shape)
            cos_hit[sel] = 0.8 * np.hypot(dx_s, dy_s)
        if k < n_act:
            would[k] = int(hit.sum())
        bt = best_t[:, cols]
        upd = hit & (t_hit < bt)
        if not upd.any():
            continue
        if cos_hit is None:
            axis = hits.axis(upd)
            comp = np.stack([dlx[upd], dly[upd], dlz[upd]])
            cos_upd = np.abs(comp[axis, np.arange(len(axis))])
        else:
            cos_upd = cos_hit[upd]
        sub = (best_t[:, cols], best_far[:, cols], best_id[:, cols], best_cos[:, cols])
        sub[0][upd] = t_hit[upd]
        sub[1][upd] = hits.t_far[upd]
        sub[2][upd] = k if k < n_act else SOURCE_BACKGROUND
        sub[3][upd] = cos_upd
        best_t[:, cols], best_far[:, cols], best_id[:, cols], best_cos[:, cols] = sub

    first = np.bincount(best_id[best_id >= 0], minlength=n_act)[:n_act]
    visibility = np.where(would > 0, first / np.maximum(would, 1), 0.0)

    # Returns: nearest hit per ray, lost by range, atmosphere and dropouts.
    ring = np.broadcast_to(np.arange(n_beams)[:, None], best_t.shape)
    sel = np.isfinite(best_t).ravel()
    # firing order: azimuth-major, beams within a column
    order = np.arange(best_t.size).reshape(n_beams, n_az).T.ravel()
    order = order[sel[order]]
    rng_t = best_t.ravel()[order]
    far = best_far.ravel()[order]
    src = best_id.ravel()[order]
    cos_inc = np.clip(best_cos.ravel()[order], 0.0, 1.0)
    d = dirs.reshape(-1, 3)[order]
    rings = ring.ravel()[order]

    refl = np.empty(len(order))
    is_box = src != SOURCE_GROUND
    box_index = np.where(src >= 0, src, 0)
    refl[is_box] = np.where(src[is_box] >= 0, reflect[box_index[is_box]], FACADE_REFLECTIVITY)
    g = ~is_box
    if g.any():
        p_ego = calib.sensor_to_ego.apply(d[g] * rng_t[g, None])
        ego_to_road = scn.road_to_global.inverse() @ scn.ego_pose(t)
        p_road = ego_to_road.apply(p_ego)
        refl[g] = MATERIAL_REFLECTIVITY[ground_material(p_road[:, 0], p_road[:, 1])]

    r_max = fx.lidar_range_m * (0.35 + 0.65 * np.sqrt(refl))
    atten = np.exp(-2.0 * fx.lidar_extinction * rng_t)
    p_keep = (1.0 - fx.lidar_dropout) * atten / (1.0 + np.exp((rng_t - r_max) / (0.04 * r_max)))
    keep = rng.random(len(order)) < p_keep

    noise = rng.normal(0.0, fx.lidar_noise_m, len(order))
    dist = rng_t + noise
    on_actor = src >= 0
    if on_actor.any():
        tn, tf = rng_t[on_actor], far[on_actor]
        inner = np.clip(tn + _INTO_BOX_M + noise[on_actor], tn + _INSIDE_MARGIN_M, tf - _INSIDE_MARGIN_M)
        dist[on_actor] = np.where(tf - tn > 2.0 * _INSIDE_MARGIN_M, inner, 0.5 * (tn + tf))
    intensity = 255.0 * refl * (0.25 + 0.75 * cos_inc) * atten * (1.0 + rng.normal(0.0, 0.08, len(order)))
    intensity = np.round(np.clip(intensity, 0.0, 255.0))

    pts = np.concatenate([d * dist[:, None], intensity[:, None], rings[:, None]], axis=1)[keep]
    source = src[keep].astype(np.int32)

    n_echo = int(rng.binomial(best_t.size, fx.lidar_backscatter)) if fx.lidar_backscatter > 0 else 0
    if n_echo:
        ray = rng.integers(0, best_t.size, n_echo)
        e_dist = rng.uniform(0.8, 2.4, n_echo)
        e_int = np.round(rng.uniform(0.0, 6.0, n_echo))
        echo = np.concatenate([dirs.reshape(-1, 3)[ray] * e_dist[:, None], e_int[:, None], (ray // n_az)[:, None]], 1)
        pts = np.concatenate([pts, echo])
        source = np.concatenate([source, np.full(n_echo, SOURCE_ECHO, np.int32)])
    return LidarSweep(pts.astype(np.float32), visibility.astype(np.float64), source)
