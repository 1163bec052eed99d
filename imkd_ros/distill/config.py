"""Distillation settings: one frozen dataclass, :class:`DistillConfig`, stored in a student checkpoint's meta.

Stages (IMKD, arXiv 2512.15581), each switched on by naming it in :attr:`DistillConfig.stages` and weighted by its
own weight (the losses and their equations are in :mod:`imkd_ros.distill.losses`):

* ``"stage1"``: LiDAR -> radar intensity-aware feature distillation: the radar BEV, through an adapter, regresses
  the teacher's BEV features on the teacher's objects and on the radar's own returns, per cell weighted by the
  intensity map.
* ``"stage2"``: LiDAR -> fused intensity-guided distillation: channel-softmax KL on the teacher's objects, and
  response distillation of the teacher's heatmaps where the teacher or the student is confident. Velocity is never
  distilled.
* ``"stage3"``: the camera and radar fusion gates calibrated towards a reliability map per modality (camera: LiDAR
  structure in the camera frustum, near; radar: radar returns on LiDAR structure).

Every loss on the teacher's objects is normalised per teacher object, as the focal loss is per ground-truth object.

Renamed keys: ``foreground_floor`` (a weight floor on background cells) was replaced by ``foreground_threshold``
(which cells are the teacher's foreground); an old YAML or dict naming it gets an error that says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imkd_ros.distill.errors import DistillConfigError

__all__ = ["STAGES", "STAGE2_SOURCES", "RENAMED_KEYS", "DistillConfig", "parse_stages"]

#: The distillation stages, in order.
STAGES: tuple[str, ...] = ("stage1", "stage2", "stage3")

#: Which student map stage 2 distils: ``"bev"`` (the BEV network output of the fused stream, the head's input, the
#: same level as the cached teacher features) or ``"fused"`` (the fuser output, before the BEV network).
STAGE2_SOURCES: tuple[str, ...] = ("bev", "fused")

#: Keys of earlier configs -> what replaced them and why (:meth:`DistillConfig.from_dict` names them in its error).
RENAMED_KEYS: dict[str, str] = {
    "foreground_floor": (
        "'foreground_threshold' (teacher-foreground cells are those where the teacher's heatmap maximum exceeds it; "
        "there is no background floor any more, losses are normalised per teacher object)"
    ),
}


def _fail(where: str, msg: str) -> None:
    raise DistillConfigError(f"DistillConfig.{where}: {msg}")


@dataclass(frozen=True)
class DistillConfig:
    """Which stages run, how strongly, and on which cells.

    With the default weights every KD term pulls at an object cell with a gradient of the order of the focal
    loss's there (measured in :mod:`imkd_ros.distill.losses`).

    Attributes:
        stages: enabled stages, a subset of :data:`STAGES` (empty: no distillation).
        intensity_mix: non-negative weights of the cached intensity maps ``(density, reflectance, activation)``
            combined into the per-cell intensity weight ``I = sum_i m_i map_i / sum_i m_i`` (in [0, 1]): the
            structure reading (non-ground LiDAR density), the reflectance, the activation reading (teacher feature
            magnitude above a threshold); see :mod:`imkd_ros.distill.intensity`.
        stage1_weight: weight of the stage-1 feature loss.
        stage2_feature_weight: weight of the stage-2 channel-softmax KL.
        stage2_response_weight: weight of the stage-2 heatmap (response) KL.
        stage3_weight: weight of the stage-3 gate loss.
        temperature: softmax temperature of the stage-2 channel distributions.
        foreground_threshold: a cell is the teacher's foreground when its heatmap maximum over classes exceeds this
            (stages 1 and 2), and its local maxima above it are the teacher's objects (the normaliser).
        confidence_threshold: the response loss acts where the teacher's or the student's heatmap maximum exceeds
            this (elsewhere the ground truth alone trains the heatmap).
        object_radius: stage 1 counts a radar return within this many head cells of a teacher-foreground cell as a
            return from that object (2 cells of 0.8 m: a car's faces around its centre).
        stage2_source: see :data:`STAGE2_SOURCES`.
    """

    stages: tuple[str, ...] = STAGES
    intensity_mix: tuple[float, float, float] = (1.0, 0.0, 1.0)
    stage1_weight: float = 4.0
    stage2_feature_weight: float = 4.0
    stage2_response_weight: float = 1.0
    stage3_weight: float = 2.0
    temperature: float = 1.0
    foreground_threshold: float = 0.1
    confidence_threshold: float = 0.3
    object_radius: int = 2
    stage2_source: str = "bev"

    def __post_init__(self) -> None:
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "intensity_mix", tuple(float(v) for v in self.intensity_mix))
        for s in stages:
            if s not in STAGES:
                _fail("stages", f"unknown stage {s!r}; choose from {', '.join(STAGES)}")
        if len(set(stages)) != len(stages):
            _fail("stages", f"has duplicates: {stages}")
        if len(self.intensity_mix) != 3:
            _fail("intensity_mix", f"needs 3 values (density, reflectance, activation), got {self.intensity_mix}")
        if any(v < 0 for v in self.intensity_mix) or sum(self.intensity_mix) <= 0:
            _fail("intensity_mix", f"needs values >= 0 with a positive sum, got {self.intensity_mix}")
        for name in ("stage1_weight", "stage2_feature_weight", "stage2_response_weight", "stage3_weight"):
            if getattr(self, name) < 0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            _fail("temperature", f"must be > 0, got {self.temperature}")
        for name in ("foreground_threshold", "confidence_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                _fail(name, f"must be in (0, 1), got {getattr(self, name)}")
        if isinstance(self.object_radius, bool) or not isinstance(self.object_radius, int) or self.object_radius < 0:
            _fail("object_radius", f"must be an int >= 0, got {self.object_radius!r}")
        if self.stage2_source not in STAGE2_SOURCES:
            _fail("stage2_source", f"must be one of {STAGE2_SOURCES}, got {self.stage2_source!r}")

    @property
    def enabled(self) -> bool:
        """True when at least one stage runs."""
        return bool(self.stages)

    def has(self, stage: str) -> bool:
        """True when ``stage`` (one of :data:`STAGES`) is enabled."""
        return stage in self.stages

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for YAML or a checkpoint's meta; inverse of :meth:`from_dict`."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        """Config from :meth:`to_dict`'s dict; an unknown key raises :class:`DistillConfigError` naming it (a key of
        :data:`RENAMED_KEYS` naming its replacement), a missing key takes its default."""
        if not isinstance(data, dict):
            raise DistillConfigError(f"DistillConfig: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        renamed = sorted(set(data) & set(RENAMED_KEYS))
        if renamed:
            raise DistillConfigError(
                "DistillConfig: " + "; ".join(f"{k!r} was replaced by {RENAMED_KEYS[k]}" for k in renamed)
            )
        unknown = sorted(set(data) - known)
        if unknown:
            raise DistillConfigError(f"DistillConfig: unknown key(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        for key in ("stages", "intensity_mix"):
            if key in kwargs:
                if not isinstance(kwargs[key], list | tuple):
                    _fail(key, f"expected a list, got {kwargs[key]!r}")
                kwargs[key] = tuple(kwargs[key])
        if "object_radius" in kwargs:
            v = kwargs["object_radius"]
            if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
                _fail("object_radius", f"expected an integer, got {v!r}")
            kwargs["object_radius"] = int(v)
        for key in known - {"stages", "intensity_mix", "stage2_source", "object_radius"}:
            if key in kwargs:
                v = kwargs[key]
                if isinstance(v, bool) or not isinstance(v, int | float):
                    _fail(key, f"expected a number, got {v!r}")
                kwargs[key] = float(v)
        return cls(**kwargs)


def parse_stages(text: str) -> tuple[str, ...]:
    """``"stage1,stage2"`` (also ``"1,2"``, ``"all"``, ``"none"``) -> ``("stage1", "stage2")`` in :data:`STAGES`
    order.

    Raises:
        DistillConfigError: an unknown stage name.
    """
    text = text.strip().lower()
    if text in ("", "none", "off"):
        return ()
    if text == "all":
        return STAGES
    wanted = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name = f"stage{part}" if part.isdigit() else part
        if name not in STAGES:
            raise DistillConfigError(f"--kd: unknown stage {part!r}; choose from {', '.join(STAGES)}, all or none")
        wanted.add(name)
    return tuple(s for s in STAGES if s in wanted)
