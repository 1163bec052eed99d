"""Writes that survive a kill: a writer SIGKILLed at (seeded) random moments leaves, under the target's name, the
previous complete version or the new complete one, never a file that loads as valid but is wrong. Checkpoints
(``save_checkpoint``) and JSON outputs (``atomic_write_text``: metrics, reports, model cards) are written by a child
process in a loop, each version internally consistent (every weight and the meta carry the version number)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imkd_ros.core.atomic import atomic_dir, atomic_write, atomic_write_text
from imkd_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

_WRITER = r"""
import json, sys, torch
from imkd_ros.core.atomic import atomic_write_text
from imkd_ros.model.checkpoint import save_checkpoint
from imkd_ros.training.train import model_config_for

ckpt, js = sys.argv[1], sys.argv[2]
cfg = model_config_for("fusion", "tiny")
model = torch.nn.Linear(1500, 1500)  # 9 MB of weights: the write dominates the loop
i = 0
while True:
    i += 1
    with torch.no_grad():
        model.weight.fill_(i)
        model.bias.fill_(i)
    save_checkpoint(ckpt, model, cfg, {"version": i})
    atomic_write_text(js, json.dumps({"version": i, "values": [i] * 400000}))
    print(i, flush=True)
"""


def test_killed_writers_leave_old_or_new_files_never_broken_ones(tmp_path: Path) -> None:
    rng = random.Random(3)
    ckpt, js = tmp_path / "model.pt", tmp_path / "metrics.json"
    leftovers = 0
    for attempt in range(40):  # at least 4 kills, and on until one has landed inside a write (a fast idle disk)
        if attempt >= 4 and leftovers > 0:
            break
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(ckpt), str(js)], stdout=subprocess.PIPE)
        assert child.stdout is not None
        try:
            child.stdout.readline()  # one version is complete
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        ck = load_checkpoint(ckpt)  # loads: complete
        v = ck.meta["version"]
        assert all(bool((t == v).all()) for t in ck.state_dict.values())  # and right: one version throughout
        data = json.loads(js.read_text())
        assert data["values"] == [data["version"]] * 400000 and abs(data["version"] - v) <= 1
        tmps = list(tmp_path.glob(".*.tmp"))
        leftovers += len(tmps)
        for t in tmps:  # an interrupted write leaves only its hidden temporary file, which nothing reads
            t.unlink()
    assert leftovers > 0, "no kill landed during a write: the test did not test anything"


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "a.json", '{"v": 1}')
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write('{"v": 2, "half')
        raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"v": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "a.json"):
            pass
    with atomic_dir(tmp_path / "bag") as inner:
        inner.mkdir()
        (inner / "x").write_text("1")
        assert not (tmp_path / "bag").exists()
    assert (tmp_path / "bag" / "x").read_text() == "1" and not list(tmp_path.glob(".*partial"))


def test_unsafe_checkpoint_refusal_says_why_and_never_suggests_weights_only_false(tmp_path: Path) -> None:
    import numpy as np

    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "imkd-checkpoint-1", "evil": np.random.default_rng(0)}, pickled)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(pickled)
    msg = str(exc.value)
    assert str(pickled) in msg and "Python objects" in msg and "execute code" in msg and "\n" not in msg
    assert "weights_only" not in msg
    from imkd_ros.model import Student
    from imkd_ros.training.train import model_config_for

    cfg = model_config_for("fusion", "tiny")
    good = save_checkpoint(tmp_path / "good.pt", Student(config=cfg), cfg)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match="corrupt") as exc:
        load_checkpoint(cut)
    assert "weights_only" not in str(exc.value) and "\n" not in str(exc.value)
