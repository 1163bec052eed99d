"""CAM_FRONT renderer: a pinhole camera image of the synthetic world, vectorised numpy (plus OpenCV's polygon fill).

Per calibration, the unit ray of every pixel (ego frame) is computed once, and with it the ground hit of every pixel
below the horizon (flat ground ``z = 0`` and a fixed mount make the ground's depth and position per pixel constant).
Each frame then:

1. sky: a vertical gradient per weather; ground: road markings, curbs, sidewalk and verge from the road-frame
   position of each pixel's ground hit (:func:`imkd_ros.data.synth.lidar.ground_material`), with a world-anchored
   texture so that the ground moves with the ego; actor shadows (contact shadow, plus the sun's cast shadow in
   clear weather);
2. boxes (actors and background facades), nearest first: every face that looks at the camera is rasterised as a
   near-plane clipped convex polygon, its per-pixel ray distance comes from the face's plane equation and a z-buffer
   keeps the nearest surface; faces are shaded by their normal against the sun and textured per class (vehicle
   windows, wheels and lamps; pedestrian clothes and a tapered silhouette; barrier stripes; cone bands; facade windows);
3. weather: night darkens everything except the ego's low-beam headlight cone, the lamps of moving vehicles and lit
   windows; distance haze (fog: grey and dense) blends surfaces towards the haze colour with depth; rain lowers the
   contrast and adds streaks; sensor noise (stronger at night and in rain).

The image is RGB ``(H, W, 3)`` uint8; the writer encodes it as JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Boxes, Calibration
from imkd_ros.data.synth.lidar import ground_material, thin_shape
from imkd_ros.data.synth.weather import WeatherEffects, weather_effects
from imkd_ros.data.synth.world import Scenario

__all__ = ["GROUND_RGB", "render_camera"]

#: Base colour (0-255) of each road-surface material, index = material code of
#: :data:`imkd_ros.data.synth.lidar.MATERIALS`.
GROUND_RGB = np.array(
    [
        [92, 92, 96],  # asphalt
        [225, 225, 220],  # white paint
        [220, 180, 40],  # yellow paint
        [104, 102, 104],  # parking asphalt
        [175, 172, 165],  # curb
        [158, 150, 140],  # sidewalk
        [88, 110, 62],  # verge
        [112, 110, 106],  # lot
    ],
    dtype=np.float32,
)

_NEAR = 0.1  # near clipping plane (m)
_FAR = 400.0  # nothing is drawn beyond this distance (m)
# Corner indices (of Boxes.corners) of the faces +x, -x, +y, -y, +z, -z, in polygon order.
_FACES = np.array([[0, 3, 7, 4], [1, 2, 6, 5], [0, 1, 5, 4], [2, 3, 7, 6], [4, 5, 6, 7], [0, 1, 2, 3]])

_K_FACADE, _K_VEHICLE, _K_CYCLE, _K_PED, _K_BARRIER, _K_CONE = range(6)
_KIND_OF_CLASS = {
    "car": _K_VEHICLE,
    "truck": _K_VEHICLE,
    "construction_vehicle": _K_VEHICLE,
    "bus": _K_VEHICLE,
    "trailer": _K_VEHICLE,
    "barrier": _K_BARRIER,
    "motorcycle": _K_CYCLE,
    "bicycle": _K_CYCLE,
    "pedestrian": _K_PED,
    "traffic_cone": _K_CONE,
}
#: The kinds drawn as :func:`~imkd_ros.data.synth.lidar.thin_shape` inside their box (its ``THIN_CLASSES``).
_THIN_KINDS = frozenset({_K_PED, _K_CYCLE, _K_CONE})
_FACADE_RGB = np.array([[150, 82, 62], [172, 166, 156], [200, 186, 152], [122, 122, 128], [180, 150, 120]], np.float32)
_GLASS = np.array([38, 48, 62], np.float32)
_TYRE = np.array([24, 24, 26], np.float32)
_SKIN = np.array([205, 165, 135], np.float32)
_HEADLAMP = np.array([255, 250, 225], np.float32)
_TAILLAMP = np.array([255, 40, 30], np.float32)
_WINDOW_LIT = np.array([200, 165, 105], np.float32)


@dataclass
class _Geometry:
    """Per-calibration constants (computed once)."""

    width: int
    height: int
    origin: np.ndarray  # (3,) camera centre, ego frame
    dx: np.ndarray  # (H, W) float32 unit ray direction, ego frame
    dy: np.ndarray
    dz: np.ndarray
    ground: slice | np.ndarray  # flat pixel indices whose ray hits the ground (a slice when contiguous)
    sky: slice | np.ndarray  # flat indices of the other pixels
    ground_x: np.ndarray  # (G,) float32 ego-frame ground hit
    ground_y: np.ndarray
    ground_t: np.ndarray  # (G,) float32 distance to the hit (m)
    noise: np.ndarray  # (H + 64, W + 64) float32 standard normal field
    sky_rgb: dict[str, np.ndarray] = field(default_factory=dict)  # weather -> (3, S) float32 sky colours


def _as_selector(mask: np.ndarray) -> slice | np.ndarray:
    """A flat boolean mask as a slice when its True entries are one contiguous run, else as indices."""
    idx = np.flatnonzero(mask)
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


@lru_cache(maxsize=4)
def _geometry_cached(intrinsic: bytes, rotation: bytes, translation: bytes, width: int, height: int) -> _Geometry:
    k = np.frombuffer(intrinsic).reshape(3, 3)
    r = np.frombuffer(rotation).reshape(3, 3)
    t = np.frombuffer(translation)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    cam = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(k).T
    ego = cam @ r.T
    ego /= np.linalg.norm(ego, axis=-1, keepdims=True)
    dx, dy, dz = (np.ascontiguousarray(ego[..., i], dtype=np.float32) for i in range(3))
    ground = (ego[..., 2] < -1e-6).ravel()
    tg = t[2] / -ego[..., 2].ravel()[ground]
    noise = np.random.default_rng(20240917).standard_normal((height + 64, width + 64), dtype=np.float32)
    return _Geometry(
        width=width,
        height=height,
        origin=t.copy(),
        dx=dx,
        dy=dy,
        dz=dz,
        ground=_as_selector(ground),
        sky=_as_selector(~ground),
        ground_x=(t[0] + tg * ego[..., 0].ravel()[ground]).astype(np.float32),
        ground_y=(t[1] + tg * ego[..., 1].ravel()[ground]).astype(np.float32),
        ground_t=tg.astype(np.float32),
        noise=noise,
    )


def _geometry(calib: Calibration) -> _Geometry:
    if calib.intrinsic is None or calib.image_size is None:
        raise ValueError(f"{calib.channel}: render_camera needs a camera calibration (intrinsic and image_size)")
    pose = calib.sensor_to_ego
    if pose.translation[2] <= 0.0:
        raise ValueError(f"{calib.channel}: the camera must be above the ground (ego z > 0)")
    w, h = calib.image_size
    return _geometry_cached(
        np.asarray(calib.intrinsic, np.float64).tobytes(), pose.rotation.tobytes(), pose.translation.tobytes(), w, h
    )


def _sky(geo: _Geometry, fx: WeatherEffects, weather: str) -> np.ndarray:
    """Sky colours ``(3, S)`` float32 of the sky pixels for this weather (cached)."""
    sky = geo.sky_rgb.get(weather)
    if sky is None:
        k = np.clip(geo.dz.ravel()[geo.sky] / 0.35, 0.0, 1.0)[None, :]
        top, hor = np.asarray(fx.sky_top_rgb, np.float32)[:, None], np.asarray(fx.sky_horizon_rgb, np.float32)[:, None]
        sky = np.ascontiguousarray(hor + (top - hor) * k, dtype=np.float32)
        geo.sky_rgb[weather] = sky
    return sky


@lru_cache(maxsize=1)
def _ground_texture() -> np.ndarray:
    """(256, 256) float32 multiplicative texture around 1 (20 cm cells on the ground)."""
    g = np.random.default_rng(7).normal(1.0, 0.035, (256, 256)).astype(np.float32)
    return g


def _sun(scn: Scenario, ego_to_global: Pose) -> np.ndarray:
    """Unit sun direction ``(3,)`` in the ego frame (a fixed per-scene azimuth and elevation)."""
    r = np.random.default_rng([scn.seed, 5])
    az, el = r.uniform(-np.pi, np.pi), r.uniform(np.deg2rad(30.0), np.deg2rad(65.0))
    sun_g = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return ego_to_global.rotation.T @ sun_g


@dataclass(frozen=True)
class _BoxStyle:
    kind: int
    label: int
    rgb: np.ndarray  # (3,) float32
    lit: bool  # lamps / windows emit light at night
    seed: int
    moving: bool = False  # cycles: with rider


def _render_boxes(
    calib: Calibration,
    boxes: Boxes,
    styles: list[_BoxStyle],
    sun_ego: np.ndarray,
    img: np.ndarray,
    zbuf: np.ndarray,
    emissive: list[tuple[np.ndarray, np.ndarray]] | None = None,
    far: float = _FAR,
) -> None:
    """Draw ego-frame ``boxes`` into ``img`` ``(3, H, W)`` float32 and ``zbuf`` ``(H, W)`` float32 (ray distance,
    m) in place, keeping each pixel's nearest surface. ``emissive`` collects (flat pixel indices, colours) of lamps
    and lit windows when given; boxes beyond ``far`` (m) are skipped.

    Each face that looks at the camera is rasterised as a (near-plane clipped) convex polygon; inside it the ray
    distance comes from the face's plane equation and is z-tested. Boxes go nearest first (fewer overwrites)."""
    geo = _geometry(calib)
    n = len(boxes)
    if not n:
        return
    pose = calib.sensor_to_ego
    o = geo.origin
    corners = boxes.corners()  # (N, 8, 3) ego
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    zero, one = np.zeros(n), np.ones(n)
    normals = np.stack(
        [
            np.stack([c, s, zero], 1),
            np.stack([-c, -s, zero], 1),
            np.stack([-s, c, zero], 1),
            np.stack([s, -c, zero], 1),
            np.stack([zero, zero, one], 1),
            np.stack([zero, zero, -one], 1),
        ],
        axis=1,
    )  # (N, 6, 3) outward, in the order of _FACES
    offset = np.einsum("nfk,nfk->nf", normals, corners[:, _FACES[:, 0]] - o)  # n . (p0 - o) < 0: faces the camera
    cam = (corners - pose.translation) @ pose.rotation  # (N, 8, 3) camera frame
    k = np.asarray(calib.intrinsic, np.float64)
    dist = np.linalg.norm(boxes.center - o, axis=1)
    radius = 0.5 * np.linalg.norm(boxes.size, axis=1)
    w_img, h_img = geo.width, geo.height
    for i in np.argsort(dist):
        if dist[i] - radius[i] > far:
            break
        if cam[i, :, 2].max() < _NEAR:
            continue
        size = boxes.size[i]
        center = boxes.center[i]
        ci, si = np.float32(c[i]), np.float32(s[i])
        for f in np.flatnonzero(offset[i] < -1e-6):
            filled = _fill_polygon(cam[i, _FACES[f]], k, w_img, h_img)
            if filled is None:
                continue
            (u0, u1, v0, v1), mask = filled
            nrm = normals[i, f]
            dxv, dyv, dzv = geo.dx[v0:v1, u0:u1], geo.dy[v0:v1, u0:u1], geo.dz[v0:v1, u0:u1]
            if f < 4:
                denom = np.float32(nrm[0]) * dxv + np.float32(nrm[1]) * dyv
            else:
                denom = np.float32(nrm[2]) * dzv
            with np.errstate(divide="ignore"):
                t = np.float32(offset[i, f]) / denom
            zv = zbuf[v0:v1, u0:u1]
            m = mask & (t < zv)
            if not m.any():
                continue
            tn = t[m]
            rx = np.float32(o[0] - center[0]) + tn * dxv[m]
            ry = np.float32(o[1] - center[1]) + tn * dyv[m]
            rz = np.float32(o[2] - center[2]) + tn * dzv[m]
            local = [ci * rx + si * ry, ci * ry - si * rx, rz]
            ray = (ci * dxv[m] + si * dyv[m], ci * dyv[m] - si * dxv[m])
            style = styles[i]
            palette, idx, lamp = _shade(style, size, int(f), local)
            keep = thin_shape(style.label, size, style.moving, local, ray)[0] if style.kind in _THIN_KINDS else None
            if keep is not None:
                rows, cols = np.nonzero(m)
                m = np.zeros_like(m)
                m[rows[keep], cols[keep]] = True
                tn, idx = tn[keep], idx[keep]
                lamp = None if lamp is None else lamp[keep]
            zv[m] = tn
            shaded = (palette * _face_shade(boxes.yaw[i], sun_ego)[f]).T  # (3, K)
            img[:, v0:v1, u0:u1][:, m] = shaded[:, idx]
            if emissive is not None and lamp is not None and lamp.any():
                rows, cols = np.nonzero(m)
                flat = (rows[lamp] + v0) * w_img + cols[lamp] + u0
                emissive.append((flat, palette[idx[lamp]]))


def _fill_polygon(
    poly: np.ndarray, k: np.ndarray, width: int, height: int
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Rasterise a convex planar polygon ``(K, 3)`` given in the camera frame (clipped at the near plane).

    Returns ``((u0, u1, v0, v1), mask)``: the pixel rectangle (end exclusive) and a ``(v1 - v0, u1 - u0)`` bool mask
    of the pixels whose centres it covers; None when nothing of it is in the image."""
    if poly[:, 2].min() < _NEAR:
        poly = _clip_near(poly)
        if len(poly) < 3:
            return None
    u = np.clip(k[0, 0] * poly[:, 0] / poly[:, 2] + k[0, 2], -1e6, 1e6)
    v = np.clip(k[1, 1] * poly[:, 1] / poly[:, 2] + k[1, 2], -1e6, 1e6)
    u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, width)
    v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, height)
    if u1 <= u0 or v1 <= v0:
        return None
    mask = np.zeros((v1 - v0, u1 - u0), np.uint8)
    pts = np.round(np.stack([u - u0, v - v0], axis=1) * 16.0).astype(np.int32)
    cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=4)
    return (u0, u1, v0, v1), mask.view(bool)


def _render_shadows(
    calib: Calibration, boxes: Boxes, sun_ego: np.ndarray | None, img: np.ndarray, zbuf: np.ndarray, strength: float
) -> None:
    """Darken the ground under (and, with ``sun_ego``, beside) each ego-frame box in ``img`` ``(3, H, W)`` by
    ``strength``: the convex hull of the footprint (grown by 10 cm) and of the footprint moved along the sun's ground
    shadow direction. Drawn before the boxes, so every finite ``zbuf`` ``(H, W)`` pixel still shows ground."""
    if not len(boxes):
        return
    geo = _geometry(calib)
    pose = calib.sensor_to_ego
    k = np.asarray(calib.intrinsic, np.float64)
    grown = Boxes(boxes.center, boxes.size + 0.2, boxes.yaw, boxes.velocity, boxes.label, boxes.score, boxes.frame)
    foot = grown.corners()[:, :4, :2]  # (N, 4, 2)
    dist = np.linalg.norm(boxes.center - geo.origin, axis=1)
    factor = np.float32(1.0 - strength)
    for i in np.flatnonzero(dist < 80.0):
        pts = foot[i]
        if sun_ego is not None and sun_ego[2] > 0.2:
            shift = -sun_ego[:2] / sun_ego[2] * (0.8 * boxes.size[i, 2])
            pts = np.concatenate([pts, pts + shift])
        hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        poly = (np.concatenate([hull, np.zeros((len(hull), 1))], axis=1) - pose.translation) @ pose.rotation
        filled = _fill_polygon(poly, k, geo.width, geo.height)
        if filled is None:
            continue
        (u0, u1, v0, v1), mask = filled
        m = mask & np.isfinite(zbuf[v0:v1, u0:u1])
        img[:, v0:v1, u0:u1][:, m] *= factor


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Clip a convex polygon ``(K, 3)`` (camera frame) to the half space ``z >= _NEAR`` (Sutherland-Hodgman)."""
    out = []
    for j in range(len(poly)):
        a, b = poly[j], poly[(j + 1) % len(poly)]
        a_in, b_in = a[2] >= _NEAR, b[2] >= _NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            out.append(a + (b - a) * ((_NEAR - a[2]) / (b[2] - a[2])))
    return np.asarray(out).reshape(-1, 3)


def _face_shade(yaw: float, sun: np.ndarray) -> np.ndarray:
    """Light factor of the 6 faces (+x, -x, +y, -y, +z, -z of the box) under ``sun`` (ego frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    normals = np.array([[c, s, 0], [-c, -s, 0], [-s, c, 0], [s, -c, 0], [0, 0, 1], [0, 0, -1]])
    return (0.55 + 0.5 * np.maximum(normals @ sun, 0.0)).astype(np.float32)


def _shade(
    style: _BoxStyle, size: np.ndarray, face: int, local: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Surface colours of the hit pixels of one face of one box (the silhouette of a thin actor inside its box is
    :func:`~imkd_ros.data.synth.lidar.thin_shape`'s).

    Args:
        style: the box's look; size: its (w, l, h); face: 0..5 = +x, -x, +y, -y, +z, -z of the box;
        local: hit points ``(M,)`` x, y, z in the box frame (m).

    Returns:
        palette ``(K, 3)`` float32, per-pixel palette index ``(M,)``, a lamp / lit-window mask ``(M,)`` (None: none).
    """
    w, l, h = (float(x) for x in size)
    lx, ly, lz = local
    up = lz + np.float32(h / 2.0)
    along = lx if face in (2, 3, 4, 5) else ly
    idx = np.zeros(len(up), np.uint8)
    if style.kind == _K_VEHICLE:
        return _shade_vehicle(style, w, l, h, face, lx, ly, up)
    if style.kind == _K_FACADE:
        return _shade_facade(style, face, along, up)
    if style.kind == _K_PED:  # body colour, trousers, skin, hair
        palette = np.stack([style.rgb, style.rgb * 0.45 + 15.0, _SKIN, np.array([45, 32, 25], np.float32)])
        idx[up < 0.47 * h] = 1
        idx[up > 0.86 * h] = 2
        idx[(up > 0.96 * h) | (face == 4)] = 3
    elif style.kind == _K_CYCLE:  # frame colour, tyres, rider, skin
        palette = np.stack([style.rgb, _TYRE, np.array([55, 55, 75], np.float32), _SKIN])
        idx[up < 0.62] = 1
        idx[up > 0.95] = 2
        idx[up > h - 0.22] = 3
    elif style.kind == _K_BARRIER:  # white, red stripes, concrete foot
        palette = np.stack([style.rgb, np.array([205, 35, 35], np.float32), np.array([140, 140, 140], np.float32)])
        idx[(np.floor((along + up) * np.float32(1.0 / 0.3)).astype(np.int32) & 1) == 1] = 1
        idx[up < 0.12] = 2
    elif style.kind == _K_CONE:  # orange, white band, black square foot
        palette = np.stack([style.rgb, np.array([240, 240, 240], np.float32), np.array([30, 30, 30], np.float32)])
        idx[(up > 0.45 * h) & (up < 0.65 * h)] = 1
        idx[up < 0.06] = 2
    else:
        palette = style.rgb[None, :]
    return palette.astype(np.float32), idx, None


def _shade_vehicle(
    style: _BoxStyle, w: float, l: float, h: float, face: int, lx: np.ndarray, ly: np.ndarray, up: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Vehicle faces: body colour, glass (two tones), tyres and dark sill, head and tail lamps; see :func:`_shade`."""
    name = CLASSES[style.label]
    head_rgb = _HEADLAMP if style.lit else np.array([235, 235, 220], np.float32)
    tail_rgb = _TAILLAMP if style.lit else np.array([190, 25, 25], np.float32)
    palette = np.stack([style.rgb, _GLASS, _GLASS + 45.0, _TYRE, head_rgb, tail_rgb, style.rgb * 0.92])
    idx = np.zeros(len(up), np.uint8)
    if face == 4:
        idx[:] = 6
        return palette, idx, None
    if name == "car":
        g0, g1, cab = 0.58 * h, 0.92 * h, l
    elif name == "bus":
        g0, g1, cab = 0.42 * h, 0.86 * h, l
    elif name == "trailer":
        g0, g1, cab = h, h, 0.0
    else:  # truck, construction vehicle: windows in the cabin at the front
        g0, g1, cab = 0.55 * h, 0.85 * h, 2.2
    band = (up > g0) & (up < g1)
    if face in (2, 3):
        glass = band & (lx > l / 2.0 - cab + 0.3) & (np.abs(lx) < l / 2.0 - 0.35)
    elif face == 0 or name in ("car", "bus"):
        glass = band & (np.abs(ly) < w / 2.0 - 0.12)
    else:
        glass = np.zeros(len(up), bool)
    idx[glass] = 1
    idx[glass & (up > 0.5 * (g0 + g1))] = 2  # sky reflected in the upper glass
    idx[up < 0.28] = 3
    lamp = None
    if face in (2, 3):
        r_w = 0.36 if name == "car" else 0.5
        x_w = l / 2.0 - (0.85 if name == "car" else 1.4)
        idx[(up < 2 * r_w) & ((np.abs(lx - x_w) < r_w) | (np.abs(lx + x_w) < r_w))] = 3
    elif not (face == 0 and name == "trailer"):
        lamp_h = (up > 0.55) & (up < 0.78) if name == "car" else (up > 0.5) & (up < 0.85)
        lamp_at = lamp_h & (np.abs(ly) > w / 2.0 - 0.42) & (np.abs(ly) < w / 2.0 - 0.08)
        idx[lamp_at] = 4 if face == 0 else 5
        lamp = lamp_at if style.lit else None
    return palette, idx, lamp


def _shade_facade(
    style: _BoxStyle, face: int, along: np.ndarray, up: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Building faces: wall colour, a window grid (3.2 m x 3.4 m floors), shop windows at street level, a darker
    plinth, grey roof; at night a quarter of the windows are lit; see :func:`_shade`."""
    palette = np.stack(
        [style.rgb, _GLASS + 25.0, _WINDOW_LIT, style.rgb * 0.7, np.array([95, 95, 100], np.float32)]
    ).astype(np.float32)
    idx = np.zeros(len(up), np.uint8)
    if face == 4:
        idx[:] = 4
        return palette, idx, None
    a = along * np.float32(1.0 / 3.2)
    col = np.floor(a)
    fa = a - col
    b = up * np.float32(1.0 / 3.4)
    row = np.floor(b)
    fb = b - row
    window = (fa > 0.22) & (fa < 0.78) & (fb > 0.3) & (fb < 0.76) & (row >= 1)
    c6 = along * np.float32(1.0 / 6.0)
    c6 -= np.floor(c6)
    shop = (up > 0.6) & (up < 2.8) & (c6 > 0.08) & (c6 < 0.83)
    glass = window | shop
    idx[glass] = 1
    idx[up < 0.5] = 3
    if not style.lit:
        return palette, idx, None
    cell = col.astype(np.int32) * 7919 + row.astype(np.int32) * 104729 + style.seed
    lit = glass & ((cell % 4) == 0)
    idx[lit] = 2
    return palette, idx, lit


def _styles(
    scn: Scenario, n_act: int, labels: np.ndarray, colors: np.ndarray, speeds: np.ndarray, n_bg: int, night: bool
) -> list[_BoxStyle]:
    styles = [
        _BoxStyle(
            _KIND_OF_CLASS[CLASSES[labels[i]]],
            int(labels[i]),
            colors[i].astype(np.float32),
            bool(night and speeds[i] > 0.3),
            i,
            bool(speeds[i] > 0.3),
        )
        for i in range(n_act)
    ]
    for j in range(n_bg):
        styles.append(_BoxStyle(_K_FACADE, 0, _FACADE_RGB[(scn.seed + 3 * j) % len(_FACADE_RGB)], night, j))
    return styles


def render_camera(scn: Scenario, t: float, calib: Calibration, rng: np.random.Generator) -> np.ndarray:
    """Render the camera ``calib`` at scene time ``t``.

    Args:
        scn: the scenario.
        t: scene time (s).
        calib: a camera calibration (``RIG["CAM_FRONT"]``): mounting, intrinsics and image size.
        rng: source of the per-frame randomness (noise offset, rain streaks).

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    geo = _geometry(calib)
    fx = weather_effects(scn.weather)
    h, w = geo.height, geo.width
    ego_to_global = scn.ego_pose(t)
    night = fx.headlights

    img = np.empty((3, h * w), np.float32)  # planar: per-pixel factors broadcast over the channel axis
    zbuf = np.full(h * w, np.inf, np.float32)
    img[:, geo.sky] = _sky(geo, fx, scn.weather)

    # Ground: material from the road-frame position of each pixel's ground hit, world-anchored texture.
    ego_to_road = scn.road_to_global.inverse() @ ego_to_global
    c, s = np.float32(ego_to_road.rotation[0, 0]), np.float32(ego_to_road.rotation[1, 0])
    tx, ty = np.float32(ego_to_road.translation[0]), np.float32(ego_to_road.translation[1])
    xr = c * geo.ground_x - s * geo.ground_y + tx
    yr = s * geo.ground_x + c * geo.ground_y + ty
    code = ground_material(xr, yr)
    tex = _ground_texture()[(xr * 5.0).astype(np.int32) & 255, (yr * 5.0).astype(np.int32) & 255]
    ground = img[:, geo.ground] if isinstance(geo.ground, slice) else np.empty((3, len(code)), np.float32)
    for ch in range(3):
        np.multiply(GROUND_RGB[:, ch][code], tex, out=ground[ch])
    if not isinstance(geo.ground, slice):
        img[:, geo.ground] = ground
    zbuf[geo.ground] = geo.ground_t

    # Boxes.
    actors = scn.actors(t, "ego")
    bg = scn.background_in(t, "ego")
    n_act, n_bg = len(actors), len(bg)
    boxes = Boxes(
        np.concatenate([actors.boxes.center, bg.center]),
        np.concatenate([actors.boxes.size, bg.size]),
        np.concatenate([actors.boxes.yaw, bg.yaw]),
        np.zeros((n_act + n_bg, 2)),
        np.zeros(n_act + n_bg, np.int64),
        np.ones(n_act + n_bg),
        "ego",
    )
    speeds = np.hypot(actors.boxes.velocity[:, 0], actors.boxes.velocity[:, 1])
    styles = _styles(scn, n_act, actors.boxes.label, actors.color, speeds, n_bg, night)
    emissive: list[tuple[np.ndarray, np.ndarray]] = []
    img3, z2 = img.reshape(3, h, w), zbuf.reshape(h, w)
    sun = _sun(scn, ego_to_global)
    sunny = scn.weather == "clear"
    _render_shadows(calib, actors.boxes, sun if sunny else None, img3, z2, 0.45 if sunny else 0.3)
    # beyond 2.5 x the visibility haze leaves < 0.1 % of a surface's contrast: skip those boxes
    far = min(_FAR, 2.5 * fx.visibility_m)
    _render_boxes(calib, boxes, styles, sun, img3, z2, emissive if night else None, far)

    # Light and haze: img = img * light * (1 - f) + haze * f, f = 1 - exp(-3 d / visibility); the sky keeps its own.
    finite = np.isfinite(zbuf)
    dist = np.where(finite, zbuf, np.float32(0.0))
    gain = np.exp(dist * np.float32(-3.0 / fx.visibility_m))  # 1 - f
    f = np.float32(1.0) - gain
    if night:
        gain *= _night_light(geo, dist, fx.ambient)
    elif fx.ambient != 1.0:
        gain[finite] *= np.float32(fx.ambient)
    haze_rgb = np.asarray(fx.haze_rgb, np.float32)
    for ch in range(3):
        img[ch] *= gain
        img[ch] += haze_rgb[ch] * f
    for flat, rgb in emissive:
        fe = f[flat]
        img[:, flat] = rgb.T * (1.0 - fe) + haze_rgb[:, None] * fe
    if fx.rain_streaks:
        _rain(img3, rng, fx.rain_streaks)

    # Contrast around the mean, sensor noise, quantisation.
    mean = img[:, ::97].mean(axis=1)
    oy, ox = rng.integers(0, 64, 2)
    noise = np.float32(fx.noise_std) * geo.noise[oy : oy + h, ox : ox + w]
    out = np.empty((h, w, 3), np.uint8)
    for ch in range(3):
        plane = img3[ch]
        if fx.contrast != 1.0:
            plane *= np.float32(fx.contrast)
        plane += noise
        plane += np.float32((1.0 - fx.contrast) * mean[ch] + 0.5)
        np.clip(plane, 0.0, 255.0, out=plane)
        out[..., ch] = plane
    return out


def _night_light(geo: _Geometry, dist: np.ndarray, ambient: float) -> np.ndarray:
    """Light factor ``(H*W,)`` at night: ambient plus the ego's low-beam headlights (a cone ahead aimed low,
    falling off with distance); computed at half resolution (the light varies smoothly) and the sky left at 1."""
    d = dist.reshape(geo.height, geo.width)[::2, ::2]
    px = geo.origin[0] + d * geo.dx[::2, ::2] - 1.0  # from the front of the ego (lamps ~2 m ahead of origin)
    py = geo.origin[1] + d * geo.dy[::2, ::2]
    pz = geo.origin[2] + d * geo.dz[::2, ::2]
    r2 = px * px + py * py
    ang2 = (py * py) / np.maximum(px * px, np.float32(1e-3))
    high = np.maximum(pz - np.float32(0.9), np.float32(0.0))
    beam = np.exp(-ang2 / np.float32(0.08) - high * high / np.float32(0.6)) * (px > 0)
    small = np.float32(ambient) + np.float32(1.4) * beam / (np.float32(1.0) + r2 / np.float32(120.0))
    light = cv2.resize(small.astype(np.float32), (geo.width, geo.height), interpolation=cv2.INTER_NEAREST).ravel()
    light[dist == 0] = 1.0  # sky keeps its own (dark) colour
    return light


def _rain(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Add ``n`` short bright slanted streaks to ``img`` ``(3, H, W)`` in place."""
    h, w = img.shape[1:]
    length = 28
    u0 = rng.uniform(0, w, n)
    v0 = rng.uniform(-length, h, n)
    gain = rng.uniform(20.0, 45.0, n).astype(np.float32)
    k = np.arange(length)
    u = (u0[:, None] + 0.18 * k).astype(np.int64)
    v = (v0[:, None] + k).astype(np.int64)
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    g = np.broadcast_to(gain[:, None], ok.shape)[ok]
    img[:, v[ok], u[ok]] += g[None, :]
