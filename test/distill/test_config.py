"""DistillConfig: validation with clear messages, dict round trip, --kd parsing."""

from __future__ import annotations

import pytest

from imkd_ros.distill.config import STAGES, DistillConfig, parse_stages
from imkd_ros.distill.errors import DistillConfigError


def test_round_trip_and_defaults() -> None:
    cfg = DistillConfig(stages=("stage1", "stage3"), intensity_mix=(1, 0, 2), stage3_weight=0.25)
    assert cfg.intensity_mix == (1.0, 0.0, 2.0) and cfg.has("stage3") and not cfg.has("stage2")
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
    assert DistillConfig.from_dict({}) == DistillConfig()
    assert DistillConfig().stages == STAGES and DistillConfig().enabled
    assert not DistillConfig(stages=()).enabled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stages": ("stage4",)}, "stages: unknown stage 'stage4'"),
        ({"stages": ("stage1", "stage1")}, "duplicates"),
        ({"intensity_mix": (0.0, 0.0, 0.0)}, "intensity_mix"),
        ({"intensity_mix": (1.0, 1.0)}, "needs 3 values"),
        ({"stage1_weight": -1.0}, "stage1_weight: must be >= 0"),
        ({"temperature": 0.0}, "temperature"),
        ({"foreground_floor": 1.5}, "foreground_floor"),
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


def test_parse_stages() -> None:
    assert parse_stages("stage1,stage2,stage3") == STAGES
    assert parse_stages("3, 1") == ("stage1", "stage3")
    assert parse_stages("all") == STAGES and parse_stages("none") == ()
    with pytest.raises(DistillConfigError, match="unknown stage 'stage9'"):
        parse_stages("stage1,stage9")
