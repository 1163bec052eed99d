"""The detector node's parameters without ROS: ``config/detector.yaml`` (the single source of the defaults, nested
keys joined with dots: ``camera_to_base.front.translation``) checked against ``config/detector.schema.json``
(:mod:`imkd_ros.pipeline.params`) into :class:`DetectorNodeConfig`, the typed, frozen record the node
(:mod:`imkd_ros.nodes.detector_core`) and the bag replay (:mod:`imkd_ros.apps.replay`) run on.

* :func:`default_parameters`: the flat defaults the node declares;
* :meth:`DetectorNodeConfig.from_parameters`: flat values (the node's after overrides, or a replay's) checked and
  typed; a bad or unknown one raises :class:`~imkd_ros.pipeline.params.ParameterError` naming it;
* :meth:`DetectorNodeConfig.changed`: the flat names two configs differ in (what a ``ros2 param set`` changed).

The flat names stay the node's interface (ROS parameters are flat); everything past the node's declaration reads the
config's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from imkd_ros.core.errors import InputError
from imkd_ros.core.geometry import pose_parameter
from imkd_ros.core.transforms import Pose
from imkd_ros.pipeline.params import ParameterError, flatten_parameters, validate_parameters

__all__ = ["DetectorNodeConfig", "DiagnosticsSettings", "default_parameters", "mountings"]


def default_parameters() -> dict[str, Any]:
    """``config/detector.yaml``'s ``/**: ros__parameters``, flat (``{"radar_to_base.front.translation": [...]}``)."""
    import yaml

    from imkd_ros.core.shipped import shipped_file

    path = shipped_file("config/detector.yaml")
    return flatten_parameters(yaml.safe_load(path.read_text(encoding="utf-8"))["/**"]["ros__parameters"])


def mountings(params: Mapping[str, Any], *, required: bool = True) -> tuple[dict[str, Pose], dict[str, Pose]]:
    """Per name of ``cameras``, ``camera_to_base.<name>``, and per name of ``radars``, ``radar_to_base.<name>`` of
    flat node parameters (:func:`imkd_ros.core.geometry.pose_parameter`), in the lists' order. A sensor without its
    mounting is an error when ``required`` (the replay; the node with ``extrinsics_source: parameters``), else it is
    left out (tf must give it).

    Raises:
        ParameterError: a required mounting that is not set (a ``ValueError``).
        ValueError: a bad mounting (named).
    """

    def of(kind: str, names: Any) -> dict[str, Pose]:
        out = {}
        for name in (str(n) for n in names):
            key = f"{kind}_to_base.{name}"
            t, q = params.get(f"{key}.translation"), params.get(f"{key}.rotation")
            if t is None or q is None:
                if required:
                    raise _unset(kind, name)
                continue
            out[name] = pose_parameter(t, q, key)
        return out

    return of("camera", params["cameras"]), of("radar", params["radars"])


def _unset(kind: str, name: str) -> ParameterError:
    return ParameterError(f"parameter {kind}_to_base.{name} is not set ({kind} {name!r} needs its mounting)")


@dataclass(frozen=True)
class DiagnosticsSettings:
    """``diagnostics.*``: seconds between two ``/diagnostics`` messages, the processing times (ms) at which the
    processing status turns WARN and ERROR, and the silence (s) after which an input is reported."""

    period: float
    processing_warn_ms: float
    processing_error_ms: float
    input_timeout: float


#: Field type (as annotated) -> how a parameter value becomes it (rclpy hands an integer where a double is declared
#: with an integral value in a YAML file, and arrays as ``array.array``).
_CAST = {"str": str, "int": int, "float": float, "bool": bool}


def _same_mountings(a: Mapping[str, Pose], b: Mapping[str, Pose]) -> bool:
    return list(a) == list(b) and all(
        np.array_equal(a[k].rotation, b[k].rotation) and np.array_equal(a[k].translation, b[k].translation) for k in a
    )


@dataclass(frozen=True, eq=False)
class DetectorNodeConfig:
    """What the detector node runs with; ``config/detector.yaml`` describes each field under the same name
    (``diagnostics.*`` in :attr:`diagnostics`). Compare two with :meth:`changed`.

    Attributes:
        camera_to_base, radar_to_base: the mountings the parameters give, by sensor name, in ``cameras`` /
            ``radars`` order (read-only mappings); a sensor without one is absent (tf must give it).
    """

    checkpoint: str
    device: str
    backend: str
    precision: str
    threads: int
    score_threshold: float
    compressed_image: bool
    cameras: tuple[str, ...]
    camera_set_lead: float
    camera_set_window: float
    radars: tuple[str, ...]
    radar_sweeps: int
    max_camera_radar_delay: float
    max_sweep_age: float
    max_radar_points: int
    radar_default_filters: bool
    use_ego_pose: bool
    output_frame: str
    extrinsics_source: str
    tf_wait: float
    camera_to_base: Mapping[str, Pose]
    radar_to_base: Mapping[str, Pose]
    publish_markers: bool
    warn_period: float
    debug_timing: bool
    diagnostics: DiagnosticsSettings

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> DetectorNodeConfig:
        """From flat parameters holding every name of ``config/detector.yaml`` but the mountings (a sensor's may be
        missing where tf gives it, unless ``extrinsics_source`` is ``parameters``).

        Raises:
            ParameterError: a missing, unknown or bad parameter, named (a ``ValueError``).
        """
        validate_parameters(params)
        try:
            cameras, radars = mountings(params, required=params["extrinsics_source"] == "parameters")
        except ParameterError:
            raise
        except (InputError, TypeError, ValueError) as exc:  # a mounting that is no pose: named by pose_parameter
            raise ParameterError(str(exc)) from exc
        plain = {f.name: _CAST[f.type](params[f.name]) for f in fields(cls) if f.type in _CAST}
        return cls(
            **plain,
            cameras=tuple(str(c) for c in params["cameras"]),
            radars=tuple(str(r) for r in params["radars"]),
            camera_to_base=MappingProxyType(cameras),
            radar_to_base=MappingProxyType(radars),
            diagnostics=DiagnosticsSettings(
                **{f.name: float(params[f"diagnostics.{f.name}"]) for f in fields(DiagnosticsSettings)}
            ),
        )

    @classmethod
    def defaults(cls) -> DetectorNodeConfig:
        """``config/detector.yaml`` as it is."""
        return cls.from_parameters(default_parameters())

    def required_mountings(self) -> tuple[Mapping[str, Pose], Mapping[str, Pose]]:
        """:attr:`camera_to_base` and :attr:`radar_to_base`, every sensor of ``cameras`` / ``radars`` in them (the
        offline replay, which has no tf).

        Raises:
            ParameterError: the first sensor without its mounting, named.
        """
        sensors = (("camera", self.cameras, self.camera_to_base), ("radar", self.radars, self.radar_to_base))
        for kind, names, have in sensors:
            missing = [n for n in names if n not in have]
            if missing:
                raise _unset(kind, missing[0])
        return self.camera_to_base, self.radar_to_base

    def changed(self, other: DetectorNodeConfig) -> list[str]:
        """The flat parameter names whose values differ in ``other`` (``diagnostics.<field>`` for the diagnostics;
        a mounting change as ``camera_to_base`` / ``radar_to_base``), in field order."""
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "diagnostics":
                diff = [d.name for d in fields(mine) if getattr(mine, d.name) != getattr(theirs, d.name)]
                out += [f"diagnostics.{name}" for name in diff]
            elif f.name.endswith("_to_base"):
                if not _same_mountings(mine, theirs):
                    out.append(f.name)
            elif mine != theirs:
                out.append(f.name)
        return out
