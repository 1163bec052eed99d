"""``imkd ablate --jobs``: a worker process does not outlive a killed study process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# the study process: one pool worker, started as ``--jobs`` starts them, that records its pid and would then train
# for a minute
_STUDY = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from imkd_ros.apps.ablate import _train_one

def train(data, out, model_cfg, cfg, **kwargs):
    open(out, "w").write(str(os.getpid()))
    time.sleep(600)

if __name__ == "__main__":
    kwargs = {"model_cfg": None, "cfg": None}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_train_one, train, None, Path(sys.argv[1]), kwargs, "cpu", False, 1).result()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_worker_exits_when_the_study_process_is_killed(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "study.py", tmp_path / "worker.pid"
    script.write_text(_STUDY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    study = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=env)
    try:
        deadline = time.monotonic() + 300  # a spawned worker imports torch: seconds idle, a minute or more under load
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            assert study.poll() is None, "the study process ended before its worker started (see its stderr above)"
            time.sleep(0.1)
        assert pid_file.is_file(), "the pool worker did not start within 300 s"
        worker = int(pid_file.read_text())
        assert _alive(worker)
        study.send_signal(signal.SIGKILL)
        study.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the pool worker trained on after its study process was killed"
    finally:
        if study.poll() is None:
            study.kill()
