"""Distillation settings: one frozen dataclass, :class:`DistillConfig`, stored in a student checkpoint's meta.

Stages (IMKD, arXiv 2512.15581), each switched on by naming it in :attr:`DistillConfig.stages` and weighted by its
own weight (the losses are in :mod:`imkd_ros.distill.losses`):

* ``"stage1"``: LiDAR -> radar intensity-aware feature distillation (radar BEV through an adapter regresses the
  teacher's BEV features, per-cell weighted by the intensity map).
* ``"stage2"``: LiDAR -> fused intensity-guided distillation (channel-softmax KL on intensity x foreground weighted
  cells) plus response distillation of the teacher's heatmaps.
* ``"stage3"``: the camera-radar fusion gates supervised by the teacher's intensity map.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imkd_ros.distill.errors import DistillConfigError

__all__ = ["STAGES", "STAGE2_SOURCES", "DistillConfig", "parse_stages"]

#: The distillation stages, in order.
STAGES: tuple[str, ...] = ("stage1", "stage2", "stage3")

#: Which student map stage 2 distils: ``"bev"`` (the BEV network output of the fused stream, the head's input, the
#: same level as the cached teacher features) or ``"fused"`` (the fuser output, before the BEV network).
STAGE2_SOURCES: tuple[str, ...] = ("bev", "fused")


def _fail(where: str, msg: str) -> None:
    raise DistillConfigError(f"DistillConfig.{where}: {msg}")


@dataclass(frozen=True)
class DistillConfig:
    """Which stages run and how strongly. All weights multiply losses that are about 1 at initialisation.

    Attributes:
        stages: enabled stages, a subset of :data:`STAGES` (empty: no distillation).
        intensity_mix: non-negative weights of the cached intensity maps ``(density, reflectance, activation)``
            combined into the per-cell intensity weight ``I = sum_i m_i map_i / sum_i m_i`` (in [0, 1]); see
            :mod:`imkd_ros.distill.intensity`.
        stage1_weight: weight of the stage-1 feature loss.
        stage2_feature_weight: weight of the stage-2 channel-softmax KL.
        stage2_response_weight: weight of the stage-2 heatmap (response) KL.
        stage3_weight: weight of the stage-3 gate loss.
        temperature: softmax temperature of the stage-2 channel distributions.
        foreground_floor: stage-2 cell weight far from any teacher detection, as a fraction of the weight on
            a detection peak (``floor + (1 - floor) * max_k heatmap``); 1 makes stage 2 foreground-agnostic.
        stage2_source: see :data:`STAGE2_SOURCES`.
    """

    stages: tuple[str, ...] = STAGES
    intensity_mix: tuple[float, float, float] = (1.0, 0.0, 1.0)
    stage1_weight: float = 1.0
    stage2_feature_weight: float = 1.0
    stage2_response_weight: float = 1.0
    stage3_weight: float = 0.5
    temperature: float = 1.0
    foreground_floor: float = 0.1
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
        if not 0.0 <= self.foreground_floor <= 1.0:
            _fail("foreground_floor", f"must be in [0, 1], got {self.foreground_floor}")
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
        """Config from :meth:`to_dict`'s dict; an unknown key raises :class:`DistillConfigError` naming it, a missing
        key takes its default."""
        if not isinstance(data, dict):
            raise DistillConfigError(f"DistillConfig: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DistillConfigError(f"DistillConfig: unknown key(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        for key in ("stages", "intensity_mix"):
            if key in kwargs:
                if not isinstance(kwargs[key], list | tuple):
                    _fail(key, f"expected a list, got {kwargs[key]!r}")
                kwargs[key] = tuple(kwargs[key])
        for key in known - {"stages", "intensity_mix", "stage2_source"}:
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
