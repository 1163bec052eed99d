"""The detector node's parameters without ROS: ``config/detector.yaml`` (the defaults) checked against
``config/detector.schema.json`` (JSON Schema draft-07, Autoware's parameter guideline), and the schema turned into
what the node declares each parameter with (description, range, read-only).

Pure Python (jsonschema, no rclpy). Names are the node's flat parameter names: nested YAML keys joined with dots
(``camera_to_base.front.translation``, ``radar_to_base.front.rotation``, ``diagnostics.processing_warn_ms``).

* :func:`validate_parameters` checks a set of values (a parameter file's content, or the node's values after
  overrides) and raises :class:`ParameterError` with ONE sentence naming the first bad parameter, e.g.
  ``parameter score_threshold: 1.5 is greater than the maximum of 1.0``.
* :func:`parameter_spec` gives the declaration of a name: :class:`ParameterSpec` (``readOnly`` in the schema marks
  the model-defining parameters, topics and frames; the others, thresholds mostly, change at run time).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imkd_ros.core.errors import ImkdError

__all__ = [
    "MOUNTING_GROUPS",
    "ParameterError",
    "ParameterSpec",
    "schema_path",
    "load_schema",
    "node_properties",
    "parameter_spec",
    "flatten_parameters",
    "nest",
    "validate_parameters",
    "validate_file",
    "check_names",
    "ROS_PARAMETERS",
]

#: Parameters every rclpy node has (or that launch passes), never reported as unknown.
ROS_PARAMETERS: tuple[str, ...] = ("use_sim_time", "start_type_description_service")

#: The parameter groups holding one mounting per sensor name (``camera_to_base.<camera>.translation``, ...).
MOUNTING_GROUPS: tuple[str, ...] = ("camera_to_base", "radar_to_base")


class ParameterError(ImkdError, ValueError):
    """A parameter value or name the node does not accept; the text names the parameter (bad input: an
    :class:`~imkd_ros.core.errors.ImkdError`, and a ``ValueError``)."""


@dataclass(frozen=True)
class ParameterSpec:
    """How one parameter is declared: description, read-only, a numeric range (``minimum``, ``maximum``, None
    where open), the allowed values (``enum``) and the JSON type."""

    name: str
    description: str
    read_only: bool
    type: str
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] = ()

    def constraints(self) -> str:
        """The constraints as a sentence (``additional_constraints`` of the ROS descriptor)."""
        parts = []
        if self.enum:
            parts.append("one of " + ", ".join(json.dumps(v) for v in self.enum))
        if self.minimum is not None or self.maximum is not None:
            parts.append(f"range [{'-inf' if self.minimum is None else self.minimum}, "
                         f"{'inf' if self.maximum is None else self.maximum}]")  # fmt: skip
        parts.append("read-only (set at start-up)" if self.read_only else "changeable at run time")
        return "; ".join(parts)


def schema_path() -> Path:
    """``config/detector.schema.json`` in the source tree or ``<share>/imkd_ros/config``."""
    from imkd_ros.core.shipped import shipped_file

    return shipped_file("config/detector.schema.json")


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The schema (checked to be a valid draft-07 schema)."""
    import jsonschema

    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise ValueError(f"schema: only local references are supported, got {ref}")
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def node_properties() -> dict[str, Mapping[str, Any]]:
    """Flat parameter name -> its schema property (references resolved). Objects are flattened; the entries of
    ``camera_to_base`` and ``radar_to_base`` appear as ``camera_to_base.*.translation`` / ``.rotation``."""
    schema = load_schema()
    root = _resolve(schema, schema["properties"]["/**"]["properties"]["ros__parameters"])
    out: dict[str, Mapping[str, Any]] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        node = _resolve(schema, node)
        if node.get("type") == "object":
            for key, sub in node.get("properties", {}).items():
                walk(sub, f"{prefix}.{key}" if prefix else key)
            extra = node.get("additionalProperties")
            if isinstance(extra, Mapping):
                walk(extra, f"{prefix}.*")
        else:
            out[prefix] = node

    walk(root, "")
    return out


def parameter_spec(name: str) -> ParameterSpec:
    """The declaration of the flat parameter ``name`` (a sensor's mounting matches ``<kind>_to_base.*.<part>``).

    Raises:
        ParameterError: ``name`` is not a parameter of the node.
    """
    props = node_properties()
    prop = props.get(name)
    if prop is None:
        parts = name.split(".")
        if len(parts) == 3 and parts[0] in MOUNTING_GROUPS:
            prop = props.get(f"{parts[0]}.*.{parts[2]}")
    if prop is None:
        raise ParameterError(f"parameter {name}: not a parameter of detector_node")
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    return ParameterSpec(
        name=name,
        description=str(prop.get("description", "")),
        read_only=bool(prop.get("readOnly", False)),
        type=str(prop.get("type", "")),
        minimum=None if lo is None else float(lo),
        maximum=None if hi is None else float(hi),
        enum=tuple(prop.get("enum", ())),
    )


def flatten_parameters(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": value}`` (the ROS parameter names of nested YAML keys; :func:`nest` undoes it)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(flatten_parameters(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the YAML layout of flat parameter names)."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ParameterError(f"parameter {name}: {p} is both a value and a group")
        node[leaf] = value
    return out


def _plain(value: Any) -> Any:
    """rclpy hands arrays over as ``array.array`` or lists; JSON Schema wants lists of plain numbers."""
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    try:
        return [_plain(v) for v in value]
    except TypeError:
        return value


def validate_parameters(params: Mapping[str, Any], *, nested: bool = False, require_all: bool = True) -> None:
    """Check parameter values against the schema.

    Args:
        params: flat names -> values (the node's), or with ``nested`` the ``ros__parameters`` mapping of a file.
        require_all: every parameter must be there (the node's full set; a file given as an override has only
            some, checked with ``require_all=False``).

    Raises:
        ParameterError: one sentence naming the first bad parameter (by name order).
    """
    import jsonschema

    doc = _plain(dict(params) if nested else nest(params))
    schema = load_schema()
    node_schema = dict(_resolve(schema, schema["definitions"]["detector_node"]))
    if not require_all:
        node_schema.pop("required", None)
    validator = jsonschema.Draft7Validator({**node_schema, "definitions": schema["definitions"]})
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    e = errors[0]
    path = ".".join(str(p) for p in e.absolute_path)
    if e.validator == "additionalProperties":
        known = set(e.schema.get("properties", {}))
        extra = sorted(k for k in e.instance if k not in known)
        names = ", ".join(f"{path}.{k}" if path else k for k in extra)
        raise ParameterError(f"parameter {names}: not a parameter of detector_node (a typo?)")
    if e.validator == "required":
        missing = str(e.message).split("'")[1] if "'" in str(e.message) else str(e.message)
        raise ParameterError(f"parameter {path + '.' if path else ''}{missing}: missing")
    raise ParameterError(f"parameter {path or '(root)'}: {e.message}")


def validate_file(path: str | Path) -> dict[str, Any]:
    """Read a detector parameter file (``/**`` or ``<node name>`` -> ``ros__parameters``) and check it; returns
    its ``ros__parameters`` mapping. A file that is not the full set is checked as overrides (``require_all``
    False) unless it is ``config/detector.yaml`` itself.

    Raises:
        ParameterError: unreadable YAML, no ``ros__parameters``, or a bad value (named).
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f"{path}: cannot read the parameter file ({exc})") from exc
    if not isinstance(doc, dict) or not any(isinstance(v, dict) and "ros__parameters" in v for v in doc.values()):
        raise ParameterError(f"{path}: no '<node>: ros__parameters:' section")
    params: dict[str, Any] = {}
    for section in doc.values():
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            params.update(section["ros__parameters"])
    for name in ROS_PARAMETERS:
        params.pop(name, None)
    try:
        validate_parameters(params, nested=True, require_all=path.resolve() == _default_file().resolve())
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from exc
    return params


def _default_file() -> Path:
    from imkd_ros.core.shipped import shipped_file

    return shipped_file("config/detector.yaml")


def check_names(names: Iterable[str]) -> None:
    """Raise :class:`ParameterError` naming the first of ``names`` (flat, e.g. the overrides a node was started
    with) that is not a parameter of the node; ROS's own (:data:`ROS_PARAMETERS`, ``qos_overrides.*``) pass."""
    for name in sorted(names):
        if name in ROS_PARAMETERS or name.startswith("qos_overrides."):
            continue
        parameter_spec(name)
