"""The teacher node's parameters without ROS: ``config/teacher.yaml`` (the single source of the defaults, nested
keys joined with dots: ``lidar_to_base.translation``) checked into :class:`TeacherNodeConfig`, the typed, frozen
record :mod:`imkd_ros.nodes.teacher_node` runs on.

:func:`teacher_default_parameters` gives the flat defaults the node declares; :meth:`TeacherNodeConfig.from_parameters`
checks the node's values (after overrides) and raises :class:`~imkd_ros.pipeline.params.ParameterError` naming the
first bad or unknown parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imkd_ros.core.errors import InputError
from imkd_ros.core.geometry import pose_parameter
from imkd_ros.core.transforms import Pose
from imkd_ros.pipeline.params import ROS_PARAMETERS, ParameterError, flatten_parameters

__all__ = ["DEVICES", "TeacherNodeConfig", "teacher_default_parameters"]

#: What ``device`` may be.
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def teacher_default_parameters() -> dict[str, Any]:
    """``config/teacher.yaml``'s ``/**: ros__parameters``, flat (``{"lidar_to_base.rotation": [...], ...}``)."""
    import yaml

    from imkd_ros.core.shipped import shipped_file

    path = shipped_file("config/teacher.yaml")
    return flatten_parameters(yaml.safe_load(path.read_text(encoding="utf-8"))["/**"]["ros__parameters"])


def _number(params: Mapping[str, Any], name: str, *, minimum: float, integer: bool = False) -> Any:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ParameterError(f"parameter {name}: {value!r} is not {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value < minimum:
        raise ParameterError(f"parameter {name}: {value!r} is below the minimum of {minimum}")
    return value


@dataclass(frozen=True)
class TeacherNodeConfig:
    """What the teacher node runs with (``config/teacher.yaml`` describes each parameter).

    Attributes:
        checkpoint: teacher ``.pt`` (a bare name: the shipped ``models/``).
        device: one of :data:`DEVICES`.
        output_frame: ``frame_id`` of the published targets.
        lidar_to_base: the LiDAR's mounting (sensor -> ``output_frame``).
        density_saturation: LiDAR points per cell at density 1 (> 0).
        max_points: the largest cloud accepted (>= 1).
        warn_period: seconds between warnings of one kind (>= 0).
    """

    checkpoint: str
    device: str
    output_frame: str
    lidar_to_base: Pose
    density_saturation: float
    max_points: int
    warn_period: float

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> TeacherNodeConfig:
        """From flat parameters (the node's values): every name of ``config/teacher.yaml`` must be there and no
        other (ROS's own pass).

        Raises:
            ParameterError: a missing, unknown or bad parameter, named (a ``ValueError``).
        """
        known = set(teacher_default_parameters())
        unknown = sorted(n for n in params if n not in known | set(ROS_PARAMETERS) and "qos_overrides." not in n)
        if unknown:
            names = ", ".join(sorted(known))
            raise ParameterError(f"parameter {unknown[0]}: not a parameter of teacher_node ({names})")
        missing = sorted(known - set(params))
        if missing:
            raise ParameterError(f"parameter {missing[0]}: not set")
        for name in ("checkpoint", "device", "output_frame"):
            if not isinstance(params[name], str) or not params[name]:
                raise ParameterError(f"parameter {name}: {params[name]!r} is not a non-empty string")
        if params["device"] not in DEVICES:
            raise ParameterError(f"parameter device: {params['device']!r} is not one of {', '.join(DEVICES)}")
        try:
            mounting = pose_parameter(
                params["lidar_to_base.translation"], params["lidar_to_base.rotation"], "lidar_to_base"
            )
        except InputError as exc:
            raise ParameterError(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"parameter lidar_to_base: {exc}") from exc
        saturation = _number(params, "density_saturation", minimum=0.0)
        if saturation == 0:
            raise ParameterError("parameter density_saturation: must be greater than 0")
        return cls(
            checkpoint=params["checkpoint"],
            device=params["device"],
            output_frame=params["output_frame"],
            lidar_to_base=mounting,
            density_saturation=float(saturation),
            max_points=int(_number(params, "max_points", minimum=1, integer=True)),
            warn_period=float(_number(params, "warn_period", minimum=0.0)),
        )
