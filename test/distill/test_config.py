"""DistillConfig: validation with clear messages, dict round trip, renamed keys, the shipped YAML, --kd parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imkd_ros.distill.config import RENAMED_KEYS, STAGES, DistillConfig, parse_stages
from imkd_ros.distill.errors import DistillConfigError

_YAML = Path(__file__).resolve().parents[2] / "config" / "distill.yaml"


def test_round_trip_and_defaults() -> None:
    cfg = DistillConfig(stages=("stage1", "stage3"), intensity_mix=(1, 0, 2), stage3_weight=0.25, object_radius=1)
    assert cfg.intensity_mix == (1.0, 0.0, 2.0) and cfg.has("stage3") and not cfg.has("stage2")
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
    assert DistillConfig.from_dict({}) == DistillConfig()
    assert DistillConfig().stages == STAGES and DistillConfig().enabled
    assert not DistillConfig(stages=()).enabled
    d = DistillConfig()
    assert 0 < d.foreground_threshold < d.confidence_threshold < 1 and d.object_radius == 2
    assert DistillConfig.from_dict({"object_radius": 3.0}).object_radius == 3  # YAML may write 3.0


def test_shipped_yaml_loads() -> None:
    data = yaml.safe_load(_YAML.read_text())
    cfg = DistillConfig.from_dict(data)
    assert cfg == DistillConfig()  # the YAML states the defaults


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stages": ("stage4",)}, "stages: unknown stage 'stage4'"),
        ({"stages": ("stage1", "stage1")}, "duplicates"),
        ({"intensity_mix": (0.0, 0.0, 0.0)}, "intensity_mix"),
        ({"intensity_mix": (1.0, 1.0)}, "needs 3 values"),
        ({"stage1_weight": -1.0}, "stage1_weight: must be >= 0"),
        ({"temperature": 0.0}, "temperature"),
        ({"foreground_threshold": 1.5}, "foreground_threshold: must be in"),
        ({"foreground_threshold": 0.0}, "foreground_threshold: must be in"),
        ({"confidence_threshold": 1.0}, "confidence_threshold: must be in"),
        ({"object_radius": -1}, "object_radius"),
        ({"object_radius": 1.5}, "object_radius"),
        ({"stage2_source": "camera"}, "stage2_source"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(DistillConfigError, match=match):
        DistillConfig(**kwargs)


def test_from_dict_rejects_unknown_keys_and_types() -> None:
    with pytest.raises(DistillConfigError, match=r"unknown key\(s\) \['stage1_wieght'\]"):
        DistillConfig.from_dict({"stage1_wieght": 2.0})
    with pytest.raises(DistillConfigError, match="stage3_weight: expected a number"):
        DistillConfig.from_dict({"stage3_weight": "high"})
    with pytest.raises(DistillConfigError, match="object_radius: expected an integer"):
        DistillConfig.from_dict({"object_radius": 2.5})


def test_renamed_keys_name_their_replacement() -> None:
    """An earlier YAML (foreground_floor: 0.05) fails with a message naming the key that replaced it."""
    assert "foreground_floor" in RENAMED_KEYS
    old = {"stage1_weight": 2.0, "stage3_weight": 0.2, "foreground_floor": 0.05}
    with pytest.raises(DistillConfigError, match=r"'foreground_floor' was replaced by 'foreground_threshold'"):
        DistillConfig.from_dict(old)


def test_parse_stages() -> None:
    assert parse_stages("stage1,stage2,stage3") == STAGES
    assert parse_stages("3, 1") == ("stage1", "stage3")
    assert parse_stages("all") == STAGES and parse_stages("none") == ()
    with pytest.raises(DistillConfigError, match="unknown stage 'stage9'"):
        parse_stages("stage1,stage9")
