"""The synthetic ego vehicle's sensor rigs, mounted as on the nuScenes Renault Zoe, and the sensors' sampling rates.

Two rigs (:data:`RIGS`, ``imkd synth --rig``): ``front`` (:data:`RIG`: one front camera, one front radar, the roof
LiDAR; the default) and ``nuscenes``, the surround rig of nuScenes: six cameras (CAM_FRONT, CAM_FRONT_RIGHT,
CAM_FRONT_LEFT, CAM_BACK, CAM_BACK_LEFT, CAM_BACK_RIGHT; CAM_BACK with the shorter focal length), five radars
(RADAR_FRONT, RADAR_FRONT_LEFT, RADAR_FRONT_RIGHT, RADAR_BACK_LEFT, RADAR_BACK_RIGHT) and the LiDAR. The mountings of
the surround sensors follow the nuScenes calibration to a few centimetres and degrees (a synthetic car, not a
calibration file). As in nuScenes the cameras of one sample are exposed at staggered times: each when the LiDAR's
beam sweeps across its field of view (:attr:`SynthRig.camera_delay_us`), so each has its own ego pose.

Mountings are sensor -> ego poses (:class:`imkd_ros.core.transforms.Pose`):

- ``CAM_FRONT``: optical centre at (1.70, 0.02, 1.51) m, axes z forward (ego +x), x right (ego -y), y down (ego -z);
  1600 x 900 pixels, focal length 1266.4 px, principal point (816.3, 491.5).
- ``RADAR_FRONT``: at (3.41, 0.0, 0.50) m, axes as the ego's (x forward, y left, z up).
- ``LIDAR_TOP``: at (0.99, 0.0, 1.84) m, yawed -90 deg as in nuScenes: sensor x points to the ego's right, y forward,
  z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Calibration

__all__ = ["RIG", "RATES_HZ", "KEYFRAME_HZ", "CAMERA_INTRINSIC", "CAMERA_SIZE", "SynthRig", "RIGS", "rig_named"]

#: CAM_FRONT pinhole matrix ``(3, 3)`` in pixels (nuScenes-like).
CAMERA_INTRINSIC = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
#: CAM_FRONT image size ``(width, height)`` in pixels.
CAMERA_SIZE: tuple[int, int] = (1600, 900)

# Columns are the camera's x (right), y (down), z (forward) axes written in the ego frame.
_CAM_ROTATION = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: Sensor channel -> calibration (sensor -> ego mounting, camera intrinsics).
RIG: dict[str, Calibration] = {
    "CAM_FRONT": Calibration(
        "CAM_FRONT", Pose(_CAM_ROTATION, [1.70, 0.02, 1.51]), CAMERA_INTRINSIC.copy(), CAMERA_SIZE
    ),
    "RADAR_FRONT": Calibration("RADAR_FRONT", Pose.from_yaw(0.0, [3.41, 0.0, 0.50])),
    "LIDAR_TOP": Calibration("LIDAR_TOP", Pose.from_yaw(-np.pi / 2.0, [0.99, 0.0, 1.84])),
}

#: Sweep rate of each sensor (Hz), as in nuScenes.
RATES_HZ: dict[str, int] = {"CAM_FRONT": 12, "RADAR_FRONT": 13, "LIDAR_TOP": 20}

#: Keyframe (annotated sample) rate in Hz.
KEYFRAME_HZ = 2


@dataclass(frozen=True)
class SynthRig:
    """A sensor rig of the synthetic world: a name, the sensors' calibrations in table order (cameras, radars, the
    LiDAR last), their sweep rates (Hz) and each camera's exposure delay after the LiDAR keyframe (us)."""

    name: str
    calibrations: dict[str, Calibration]
    rates_hz: dict[str, int]
    camera_delay_us: dict[str, int]

    def __post_init__(self) -> None:
        if set(self.calibrations) != set(self.rates_hz) or "LIDAR_TOP" not in self.calibrations:
            raise ValueError(
                f"rig {self.name}: calibrations and rates must name the same sensors, LIDAR_TOP among them"
            )
        if set(self.camera_delay_us) != set(self.cameras):
            raise ValueError(f"rig {self.name}: a camera delay per camera is needed")

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.calibrations)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(c for c in self.calibrations if c.startswith("CAM"))

    @property
    def radars(self) -> tuple[str, ...]:
        return tuple(c for c in self.calibrations if c.startswith("RADAR"))


def _camera(channel: str, xyz: tuple[float, float, float], yaw_deg: float, focal: float = 1266.4) -> Calibration:
    """A level camera at ``xyz`` looking along ego yaw ``yaw_deg`` (optical axes as :data:`_CAM_ROTATION`)."""
    k = np.array([[focal, 0.0, 816.3], [0.0, focal, 491.5], [0.0, 0.0, 1.0]])
    turn = Pose.from_yaw(np.deg2rad(yaw_deg), [0.0, 0.0, 0.0]).rotation
    return Calibration(channel, Pose(turn @ _CAM_ROTATION, list(xyz)), k, CAMERA_SIZE)


def _radar(channel: str, xyz: tuple[float, float, float], yaw_deg: float) -> Calibration:
    return Calibration(channel, Pose.from_yaw(np.deg2rad(yaw_deg), list(xyz)))


#: The LiDAR's beam passes a camera's centre line this long after the LiDAR keyframe: yaw / 360 deg of its 50 ms
#: revolution, counted clockwise from the front camera (which is exposed 8 ms after the keyframe, as in the ``front``
#: rig).
def _delay(yaw_deg: float) -> int:
    return 8_000 + int(round(((-yaw_deg) % 360.0) / 360.0 * 50_000))


_SURROUND_CAMERAS = (
    ("CAM_FRONT", (1.70, 0.02, 1.51), 0.0, 1266.4),
    ("CAM_FRONT_RIGHT", (1.59, -0.49, 1.51), -55.0, 1266.4),
    ("CAM_FRONT_LEFT", (1.52, 0.49, 1.51), 55.0, 1266.4),
    ("CAM_BACK", (0.03, 0.00, 1.57), 180.0, 809.2),
    ("CAM_BACK_LEFT", (1.04, 0.48, 1.56), 110.0, 1266.4),
    ("CAM_BACK_RIGHT", (1.03, -0.48, 1.56), -110.0, 1266.4),
)
_SURROUND_RADARS = (
    ("RADAR_FRONT", (3.41, 0.00, 0.50), 0.0),
    ("RADAR_FRONT_LEFT", (2.42, 0.80, 0.43), 90.0),
    ("RADAR_FRONT_RIGHT", (2.42, -0.80, 0.43), -90.0),
    ("RADAR_BACK_LEFT", (-0.56, 0.62, 0.53), 180.0),
    ("RADAR_BACK_RIGHT", (-0.56, -0.62, 0.53), 180.0),
)

#: Rig name -> :class:`SynthRig`.
RIGS: dict[str, SynthRig] = {
    "front": SynthRig("front", dict(RIG), dict(RATES_HZ), {"CAM_FRONT": 8_000}),
    "nuscenes": SynthRig(
        "nuscenes",
        {
            **{c: _camera(c, xyz, yaw, f) for c, xyz, yaw, f in _SURROUND_CAMERAS},
            **{r: _radar(r, xyz, yaw) for r, xyz, yaw in _SURROUND_RADARS},
            "LIDAR_TOP": RIG["LIDAR_TOP"],
        },
        {**{c[0]: 12 for c in _SURROUND_CAMERAS}, **{r[0]: 13 for r in _SURROUND_RADARS}, "LIDAR_TOP": 20},
        {c: _delay(yaw) for c, _, yaw, _ in _SURROUND_CAMERAS},
    ),
}


def rig_named(name: str) -> SynthRig:
    """The rig ``name``; ValueError naming the known rigs otherwise."""
    try:
        return RIGS[name]
    except KeyError:
        raise ValueError(f"unknown rig {name!r}: expected one of {', '.join(RIGS)}") from None
