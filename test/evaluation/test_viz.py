"""Library plots leave process-wide state alone: they draw on a ``matplotlib.figure.Figure`` (no pyplot, so no
backend switch and no global figure registry); choosing a backend is an entry point's business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use("svg")  # a backend chosen by the caller must survive the library's plots
from imkd_ros.distill.intensity import draw_intensity
from imkd_ros.training.train import _write_logs
from imkd_ros.core.transforms import Pose
from imkd_ros.core.types import Frame
from imkd_ros.evaluation.viz import draw_bev

out = Path(sys.argv[1])
draw_intensity(out / "i.png", np.random.default_rng(0).random((3, 8, 8)), (0.0, 25.6, -12.8, 12.8))
_write_logs(out / "m.pt", [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
radar = np.zeros((3, 7), np.float32)
frame = Frame("t" * 8, 0, "s", None, (), radar, None, Pose(np.eye(3), np.zeros(3)))
draw_bev(out / "b.png", frame)
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_plots_use_no_pyplot_and_keep_the_backend(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True, timeout=300, check=True
    )
    assert res.stdout.split() == ["svg", "False"], res.stdout + res.stderr
    for name in ("i.png", "m_loss.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
