"""The semantic-prior map PNG of the synthetic world (the ``map`` table's image).

The devkit reads a map as a binary mask at 0.1 m per pixel whose bottom-left pixel is the global origin: pixel
``(u, v) = (x / 0.1, H - y / 0.1)`` (``nuscenes.utils.map_mask.MapMask``); 255 marks the drivable surface, 0
everything else. One PNG serves all scenes of a dataset (as one nuScenes map serves all logs of a location): every
scene's four-lane road (``|y| <= ROAD_HALF_WIDTH`` in its road frame) is drawn over the stretch the scene uses.
Global coordinates below zero cannot be drawn in such an image, and the image is capped at
:data:`MAX_MAP_PIXELS` a side, so road parts outside ``[0, MAX_MAP_PIXELS * 0.1)`` m on either axis are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from imkd_ros.data.synth.world import ROAD_HALF_WIDTH, Scenario

__all__ = ["MAP_RESOLUTION", "MAX_MAP_PIXELS", "ROAD_MARGIN_M", "road_polygon", "render_map_png"]

#: Metres per pixel of the map image (the devkit's native resolution).
MAP_RESOLUTION = 0.1
#: Largest image side in pixels (819.2 m at 0.1 m).
MAX_MAP_PIXELS = 8192
#: Road drawn beyond the ego's travel, behind and ahead (m).
ROAD_MARGIN_M = 120.0


def road_polygon(scn: Scenario) -> np.ndarray:
    """Drivable-surface rectangle of a scene: ``(4, 2)`` global x, y (m) of the road from ``ROAD_MARGIN_M`` behind
    the ego's start to ``ROAD_MARGIN_M`` ahead of its end."""
    travel = scn.ego_speed * scn.duration
    x0, x1 = -ROAD_MARGIN_M, travel + ROAD_MARGIN_M
    corners = np.array(
        [
            [x0, -ROAD_HALF_WIDTH, 0.0],
            [x1, -ROAD_HALF_WIDTH, 0.0],
            [x1, ROAD_HALF_WIDTH, 0.0],
            [x0, ROAD_HALF_WIDTH, 0.0],
        ]
    )
    return scn.road_to_global.apply(corners)[:, :2]


def render_map_png(scenarios: Sequence[Scenario]) -> bytes:
    """PNG bytes of the drivable-area mask of all ``scenarios`` (uint8 grey, 0 / 255; see the module docstring).

    The image is just large enough for the drawable parts of the roads (at least 1 x 1 pixel).
    """
    polys = [road_polygon(s) for s in scenarios]
    extent = np.max(np.stack(polys).reshape(-1, 2), axis=0) if polys else np.zeros(2)
    width, height = (int(np.clip(np.ceil(e / MAP_RESOLUTION) + 1, 1, MAX_MAP_PIXELS)) for e in extent)
    mask = np.zeros((height, width), dtype=np.uint8)
    for poly in polys:
        uv = np.stack([poly[:, 0] / MAP_RESOLUTION, height - poly[:, 1] / MAP_RESOLUTION], axis=1)
        cv2.fillPoly(mask, [np.round(uv).astype(np.int32)], 255)
    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"cv2.imencode failed to encode the {width} x {height} map PNG")
    return buf.tobytes()
