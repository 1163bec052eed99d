"""Model cards: the metrics table holds the coverage region and the whole grid of every ``imkd eval`` folder (only
the grid for folders written before coverage was scored), per weather too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imkd_ros.model_card import write_model_card

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "student_nokd.pt"

_ERRORS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")


def _eval_dir(d: Path, nds: float, gt_boxes: int, weather: dict[str, float]) -> None:
    d.mkdir(parents=True)
    summary = {
        "nd_score": nds,
        "mean_ap": nds - 0.1,
        "tp_errors": {k: 0.25 for k in _ERRORS},
        "eval_scope": {"gt_boxes": gt_boxes},
    }
    (d / "metrics_summary.json").write_text(json.dumps(summary))
    by_weather = {w: {"nds": v, "map": v - 0.1, "trans_err": 0.3, "vel_err": 0.6} for w, v in weather.items()}
    (d / "by_weather.json").write_text(json.dumps(by_weather))


@pytest.mark.skipif(not MODEL.is_file(), reason=f"shipped model {MODEL} missing")
def test_card_has_coverage_and_grid_rows(tmp_path: Path) -> None:
    own, old = tmp_path / "own", tmp_path / "old"
    _eval_dir(own, 0.45, 200, {"clear": 0.5})
    _eval_dir(own / "coverage", 0.55, 160, {"clear": 0.6})
    _eval_dir(old, 0.40, 200, {"rain": 0.35})  # written before coverage was scored
    card = write_model_card(tmp_path / "card.md", MODEL, "Test card", "imkd synth ...", {"this": own, "before": old})
    text = card.read_text()
    assert "| model | region | NDS | mAP |" in text and "GT boxes" in text
    assert "| this | coverage | 0.550 | 0.450 |" in text and text.rstrip().count("| this | coverage |") == 2
    assert "| this | grid | 0.450 | 0.350 |" in text
    assert text.index("| this | coverage | 0.550") < text.index("| this | grid | 0.450")  # coverage first
    assert "| before | grid | 0.400 |" in text and "| before | coverage |" not in text
    assert "| 160 |" in text and "| 200 |" in text
    assert "| this | coverage | clear | 0.600 |" in text and "| before | grid | rain | 0.350 |" in text
