"""``imkd bench``: benchmarks written as flat JSON (name -> number). Medians over repeats; never used in tests.

Each benchmark is a function ``(repeats, workdir) -> dict[str, float]`` listed in :data:`BENCHMARKS`; later
issues add theirs to the same tuple. Absolute times hold only for the machine they were taken on, so the JSON
also records the machine (CPU count, torch threads).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["BENCHMARKS", "run_benchmarks", "bench_synth", "bench_reader"]

Benchmark = Callable[[int, Path], dict[str, float]]


def bench_synth(repeats: int, workdir: Path) -> dict[str, float]:
    """``synth_samples_per_s``: keyframes per second written with all their sweeps (1 scene x 4 samples, all
    sensors and camera sweeps, at 1600x900), median over repeats; and the same with camera sweeps off."""
    from imkd_ros.data.synth import write_dataset

    out: dict[str, float] = {}
    for key, cam_sweeps in (("synth_samples_per_s", True), ("synth_samples_per_s_no_camera_sweeps", False)):
        rates = []
        for r in range(repeats):
            root = workdir / f"synth-{key}-{r}"
            t0 = time.perf_counter()
            write_dataset(root, scenes=2, samples_per_scene=4, seed=r, weathers=("clear",), camera_sweeps=cam_sweeps)
            rates.append(8 / (time.perf_counter() - t0))
        out[key] = statistics.median(rates)
    return out


def bench_reader(repeats: int, workdir: Path) -> dict[str, float]:
    """``reader_frames_per_s``: Frames per second read (image, 6 radar sweeps, LiDAR, GT) from a small dataset."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset

    root = workdir / "reader-data"
    write_dataset(root, scenes=2, samples_per_scene=6, seed=0, weathers=("clear",), camera_sweeps=False)
    reader = NuScenesReader(root, "v1.0-synth")
    tokens = reader.split_samples("synth_train") + reader.split_samples("synth_val")
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for tok in tokens:
            reader.frame(tok)
        rates.append(len(tokens) / (time.perf_counter() - t0))
    return {"reader_frames_per_s": statistics.median(rates)}


BENCHMARKS: tuple[tuple[str, Benchmark], ...] = (
    ("synth", bench_synth),
    ("reader", bench_reader),
)


def run_benchmarks(only: str | None = None, repeats: int = 3) -> dict[str, float | str]:
    """Run the benchmarks named in ``only`` (comma list; default all) and return one flat dict."""
    names = [n for n, _ in BENCHMARKS]
    wanted = names if only is None else [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    results: dict[str, float | str] = {
        "machine": platform.machine(),
        "cpu_count": float(os.cpu_count() or 0),
    }
    with tempfile.TemporaryDirectory(prefix="imkd-bench-") as tmp:
        for name, fn in BENCHMARKS:
            if name in wanted:
                results.update(fn(repeats, Path(tmp)))
    return results
