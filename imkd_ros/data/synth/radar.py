"""RADAR_FRONT simulator: a sparse automotive radar (nuScenes' Continental ARS 408) in the synthetic world.

Model, kept simple:
- field of view: near beam +-60 deg up to 20 m narrowing to +-40 deg at 70 m, far beam +-9 deg up to 250 m;
- per actor, the radar cross-section depends on class and aspect (the side of a vehicle reflects ~6 dB more than
  its front or back); the detection probability is a logistic function of the radar equation's SNR
  (RCS - 40 log10(range)); large objects give several returns (about one per 3 m of visible extent, more near);
- a return lies slightly inside the visible surface (5-40 cm deep along the line of sight) at the radar's height,
  then gets small position noise (so that most returns of an object stay inside its box); returns behind a nearer
  object are occluded;
- velocities: ``(vx, vy)`` is the RADIAL velocity vector relative to the moving sensor, ``(vx_comp, vy_comp)`` the
  ego-motion-compensated one (the object's velocity over ground projected on the line of sight), both in the sensor
  frame, with 0.1 m/s noise;
- clutter: stationary returns from curbs, facades and road furniture (compensated velocity ~0), about a third of
  them with states that the devkit's default filters drop (``invalid_state != 0`` or ``ambig_state != 3``); and a
  few ghosts (false alarms with arbitrary velocity) that pass the filters;
- weather barely matters: rain adds a little noise and clutter; fog and night change nothing.

Points are in the SENSOR frame with ``z = 0`` (the ARS 408 is a 2D radar; nuScenes stores z = 0 too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.data.pcd import RADAR_PCD_DTYPE
from imkd_ros.data.synth.lidar import slab_intersect
from imkd_ros.data.synth.weather import weather_effects
from imkd_ros.data.synth.world import FACADE_Y, Scenario

__all__ = [
    "RADAR_MAX_RANGE_M",
    "SOURCE_CLUTTER",
    "SOURCE_GHOST",
    "RadarSweep",
    "in_radar_fov",
    "simulate_radar",
    "radar_sweep",
]

RADAR_MAX_RANGE_M = 250.0
#: :attr:`RadarSweep.source` codes of returns that are not from an actor.
SOURCE_CLUTTER = -1
SOURCE_GHOST = -2

_SNR_THRESHOLD_DB = 8.0
_SNR_SCALE_DB = 2.0
_POS_NOISE_M = 0.08  # radial position noise (m)
_ANGLE_NOISE_RAD = 0.0015  # azimuth noise: lateral error grows with range
_VEL_NOISE_MPS = 0.1
_CLUTTER_MEAN = 22.0
_GHOST_MEAN = 2.0
_ISOTROPIC = {CLASSES.index(c) for c in ("pedestrian", "traffic_cone", "barrier")}


@dataclass(frozen=True)
class RadarSweep:
    """One radar cycle.

    Attributes:
        points: ``(N,)`` structured array of :data:`imkd_ros.data.pcd.RADAR_PCD_DTYPE` in the sensor frame.
        source: ``(N,)`` int32: the actor index a return comes from (>= 0), :data:`SOURCE_CLUTTER` or
            :data:`SOURCE_GHOST`.
    """

    points: np.ndarray
    source: np.ndarray


def in_radar_fov(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean: sensor-frame positions ``(N,)`` each (m) inside the radar's near or far beam."""
    r = np.hypot(x, y)
    az = np.abs(np.arctan2(y, x))
    near_half = np.deg2rad(60.0 - 20.0 * np.clip((r - 20.0) / 50.0, 0.0, 1.0))
    return ((r <= 70.0) & (az <= near_half)) | ((r <= RADAR_MAX_RANGE_M) & (az <= np.deg2rad(9.0)))


def _first_hits(boxes: Boxes, ux: np.ndarray, uy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal rays from the sensor origin along unit ``(ux, uy)`` ``(M,)`` against ``boxes`` (sensor frame).

    Returns ``(t_near, t_far)`` ``(n_boxes, M)`` (inf where missed) and the index of the first box per ray (-1)."""
    n, m = len(boxes), len(ux)
    t_near = np.full((n, m), np.inf)
    t_far = np.full((n, m), np.inf)
    if n and m:
        c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
        cx, cy, cz = (boxes.center[:, i : i + 1] for i in range(3))
        dlx = c * ux + s * uy
        dly = -s * ux + c * uy
        origin = (-(c * cx + s * cy), -(-s * cx + c * cy), -cz)
        half = (boxes.size[:, 1:2] / 2.0, boxes.size[:, 0:1] / 2.0, boxes.size[:, 2:3] / 2.0)
        hits = slab_intersect(origin, dlx, dly, np.zeros_like(dlx), half)
        hit = hits.hit()
        t_near = np.where(hit, hits.t_near, np.inf)
        t_far = np.where(hit, hits.t_far, np.inf)
    first = np.argmin(t_near, axis=0) if n else np.zeros(m, np.int64)
    first = np.where(np.isfinite(t_near.min(axis=0)) if n else np.zeros(m, bool), first, -1)
    return t_near, t_far, first


def simulate_radar(scn: Scenario, t: float, calib: Calibration, rng: np.random.Generator) -> RadarSweep:
    """Simulate one radar cycle at scene time ``t``; see the module docstring for the model.

    Args:
        scn: the scenario.
        t: scene time (s).
        calib: the radar's calibration (mounted upright; ``RIG["RADAR_FRONT"]``).
        rng: source of all randomness.
    """
    if not np.allclose(calib.sensor_to_ego.rotation[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise ValueError(f"{calib.channel}: the synthetic radar must be mounted upright (rotation about z only)")
    fx = weather_effects(scn.weather)
    ego_to_sensor = calib.sensor_to_ego.inverse()
    actors = scn.actors(t, "ego")
    n_act = len(actors)
    boxes = actors.boxes.transform(ego_to_sensor, "sensor")
    bg = scn.background_in(t, "ego").transform(ego_to_sensor, "sensor")
    # Sensor velocity over ground in the sensor frame (the ego does not rotate: no lever-arm term).
    ego_vel = scn.ego_pose(t).inverse().rotate(scn.ego_velocity(t)[None])[0]
    v_sensor = ego_to_sensor.rotate(ego_vel[None])[0, :2]
    every = _stack(boxes, bg)

    # -- actor returns ------------------------------------------------------------------------------------------
    cx, cy = boxes.center[:, 0], boxes.center[:, 1]
    rng_c = np.hypot(cx, cy)
    az_c = np.arctan2(cy, cx)
    rel = boxes.yaw - az_c
    l, w = boxes.size[:, 1], boxes.size[:, 0]
    extent = np.abs(l * np.sin(rel)) + np.abs(w * np.cos(rel))
    front_aspect = np.cos(rel) ** 2
    aspect_db = np.where(np.isin(boxes.label, list(_ISOTROPIC)), 0.0, -6.0 * front_aspect)
    rcs = actors.rcs + aspect_db
    snr = rcs + 40.0 * (2.0 - np.log10(np.maximum(rng_c, 1.0)))
    p_det = 1.0 / (1.0 + np.exp(-(snr - _SNR_THRESHOLD_DB) / _SNR_SCALE_DB))
    lam = 0.33 * extent * np.clip(40.0 / np.maximum(rng_c, 1.0), 0.3, 1.5)
    n_try = np.where(in_radar_fov(cx, cy) & (cx > 0.0), 1 + rng.poisson(lam), 0)
    src = np.repeat(np.arange(n_act), n_try)
    # aim at a random point of the footprint at the radar's height
    u, v = rng.uniform(-0.5, 0.5, len(src)), rng.uniform(-0.5, 0.5, len(src))
    yaw = boxes.yaw[src]
    tx = cx[src] + np.cos(yaw) * u * l[src] - np.sin(yaw) * v * w[src]
    ty = cy[src] + np.sin(yaw) * u * l[src] + np.cos(yaw) * v * w[src]
    norm = np.maximum(np.hypot(tx, ty), 1e-6)
    ux, uy = tx / norm, ty / norm
    t_near, t_far, first = _first_hits(every, ux, uy)
    idx = np.arange(len(src))
    ok = (first == src) & (rng.random(len(src)) < p_det[src])
    tn, tf = t_near[src, idx], t_far[src, idx]
    depth = np.minimum(rng.uniform(0.05, 0.4, len(src)), 0.5 * (tf - tn))
    dist = np.where(ok, tn + depth, 0.0)
    ok &= in_radar_fov(dist * ux, dist * uy)
    src, ux, uy, dist = src[ok], ux[ok], uy[ok], dist[ok]
    vel = boxes.velocity[src]
    vr_c = vel[:, 0] * ux + vel[:, 1] * uy
    speed = np.hypot(boxes.velocity[src, 0], boxes.velocity[src, 1])
    rcs_ret = rcs[src] + rng.normal(0.0, 2.0, len(src))
    dyn = np.where(np.abs(vr_c) > 0.5, np.where(vr_c < 0.0, 2, 0), np.where(speed > 0.5, 6, 1))
    dyn = np.where((dyn == 1) & (rng.random(len(src)) < 0.2), 3, dyn)
    actor_part = (src, ux, uy, dist, vr_c, rcs_ret, dyn)

    # -- clutter: curbs, facades and road furniture, stationary ----------------------------------------------------
    n_clutter = int(rng.poisson(_CLUTTER_MEAN + fx.radar_extra_clutter))
    sensor_to_road = scn.road_to_global.inverse() @ scn.ego_pose(t) @ calib.sensor_to_ego
    road_to_sensor = sensor_to_road.inverse()
    origin_road = sensor_to_road.translation
    kind = rng.integers(0, 3, n_clutter)
    x_r = origin_road[0] + rng.uniform(2.0, 90.0, n_clutter)
    side = np.where(rng.random(n_clutter) < 0.5, -1.0, 1.0)
    y_r = np.select(
        [kind == 0, kind == 1],
        [side * 9.45, side * (FACADE_Y + 0.1)],
        rng.uniform(-9.0, 9.0, n_clutter),
    )
    p_s = road_to_sensor.apply(np.stack([x_r, y_r, np.zeros(n_clutter)], axis=1))
    keep = in_radar_fov(p_s[:, 0], p_s[:, 1]) & (p_s[:, 0] > 0.0)
    keep &= ~boxes.contains(np.c_[p_s[:, :2], np.zeros(n_clutter)], margin=0.5).any(axis=0) if n_act else keep
    p_s = p_s[keep]
    c_dist = np.hypot(p_s[:, 0], p_s[:, 1])
    c_ux, c_uy = p_s[:, 0] / np.maximum(c_dist, 1e-6), p_s[:, 1] / np.maximum(c_dist, 1e-6)
    nc = len(p_s)
    c_rcs = rng.normal(-2.0, 4.0, nc)
    c_dyn = rng.choice(np.array([1, 3, 5], np.int64), nc, p=[0.7, 0.2, 0.1])
    clutter_part = (np.full(nc, SOURCE_CLUTTER), c_ux, c_uy, c_dist, np.zeros(nc), c_rcs, c_dyn)
    c_filtered = rng.random(nc) < 0.35

    # -- ghosts: false alarms anywhere in the near beam, outside any actor ---------------------------------------
    ng = int(rng.poisson(_GHOST_MEAN))
    g_dist = rng.uniform(5.0, 70.0, ng)
    g_az = rng.uniform(-np.deg2rad(40.0), np.deg2rad(40.0), ng)
    g_ux, g_uy = np.cos(g_az), np.sin(g_az)
    g_pts = np.c_[g_dist * g_ux, g_dist * g_uy, np.zeros(ng)]
    g_keep = ~boxes.contains(g_pts, margin=0.5).any(axis=0) if n_act else np.ones(ng, bool)
    ng = int(g_keep.sum())
    ghost_part = (
        np.full(ng, SOURCE_GHOST),
        g_ux[g_keep],
        g_uy[g_keep],
        g_dist[g_keep],
        rng.normal(0.0, 3.0, ng),
        rng.normal(-5.0, 3.0, ng),
        rng.choice(np.array([0, 2, 4], np.int64), ng),
    )

    parts = [np.concatenate(cols) for cols in zip(actor_part, clutter_part, ghost_part, strict=True)]
    source, ux, uy, dist, vr_c, rcs_all, dyn = parts
    n = len(source)
    noise = fx.radar_noise_scale
    r_noisy = dist + rng.normal(0.0, _POS_NOISE_M * noise, n)
    az = np.arctan2(uy, ux) + rng.normal(0.0, _ANGLE_NOISE_RAD * noise, n)
    vr_c = vr_c + rng.normal(0.0, _VEL_NOISE_MPS * noise, n)
    vr = vr_c - (v_sensor[0] * ux + v_sensor[1] * uy)

    out = np.zeros(n, dtype=RADAR_PCD_DTYPE)
    out["x"] = r_noisy * np.cos(az)
    out["y"] = r_noisy * np.sin(az)
    out["z"] = 0.0
    out["dyn_prop"] = dyn
    out["rcs"] = np.round(rcs_all * 2.0) / 2.0  # the ARS 408 reports RCS in 0.5 dBsm steps
    out["vx"], out["vy"] = vr * ux, vr * uy
    out["vx_comp"], out["vy_comp"] = vr_c * ux, vr_c * uy
    out["is_quality_valid"] = 1
    out["ambig_state"] = 3
    out["invalid_state"] = 0
    out["pdh0"] = 1
    out["x_rms"] = np.clip(np.round(3 + dist / 15.0), 0, 31)
    out["y_rms"] = np.clip(np.round(3 + dist / 10.0), 0, 31)
    out["vx_rms"] = 3
    out["vy_rms"] = 3
    is_ghost = source == SOURCE_GHOST
    out["pdh0"][is_ghost] = rng.integers(2, 5, int(is_ghost.sum()))
    # clutter that the devkit's default filters drop: invalid or ambiguous states
    filt = np.zeros(n, bool)
    filt[source == SOURCE_CLUTTER] = c_filtered
    n_f = int(filt.sum())
    use_invalid = rng.random(n_f) < 0.5
    out["invalid_state"][filt] = np.where(use_invalid, rng.choice(np.array([1, 2, 4, 6, 13]), n_f), 0)
    out["ambig_state"][filt] = np.where(use_invalid, 3, rng.choice(np.array([0, 1, 2, 4]), n_f))

    perm = rng.permutation(n)
    out, source = out[perm], source[perm].astype(np.int32)
    out["id"] = np.arange(n)
    return RadarSweep(out, source)


def radar_sweep(scn: Scenario, t: float, calib: Calibration, rng: np.random.Generator) -> np.ndarray:
    """One radar cycle at scene time ``t`` as a structured array ``(N,)`` with the 18 nuScenes radar fields
    (:data:`imkd_ros.data.pcd.RADAR_PCD_FIELDS`) in the sensor frame; see :func:`simulate_radar`."""
    return simulate_radar(scn, t, calib, rng).points


def _stack(a: Boxes, b: Boxes) -> Boxes:
    n = len(a) + len(b)
    return Boxes(
        np.concatenate([a.center, b.center]),
        np.concatenate([a.size, b.size]),
        np.concatenate([a.yaw, b.yaw]),
        np.zeros((n, 2)),
        np.zeros(n, np.int64),
        np.ones(n),
        a.frame,
    )
