"""The IMKD ablation (``imkd ablate``): the same student, data, schedule and seed trained without distillation,
with stage 1, stages 1-2 and stages 1-3, each scored with the devkit on the validation split.

Writes into ``out``: one folder per row (``<key>/student.pt`` and the training loop's logs and validation output),
``teacher_eval/`` (when a teacher checkpoint is known: the teacher on the same split, for the gap it leaves),
``ablation.md`` (the table: NDS, mAP, the five TP errors, NDS per weather, the gain over the student without
distillation, the share of the teacher gap closed, the schedule), ``ablation.json`` (the same numbers) and
``ablation.png`` (bar chart). A row whose checkpoint already exists with the same schedule and distillation is
reused, and an interrupted row resumes from its ``.train.pt``, so a long ablation can be restarted.

The headline region is the students' coverage region (:mod:`imkd_ros.coverage`: the BEV grid within the camera's
and radar's fields of view), where the teacher's and the students' scores are comparable: outside it the LiDAR
teacher sees objects the students have no data of. NDS and mAP on the whole grid stand beside it. In
``ablation.json`` a row's ``metrics`` / ``by_weather`` are the grid's (as before), ``coverage_metrics`` /
``coverage_by_weather`` the coverage region's; the goals are measured on the coverage region. A reused row whose
validation output predates the coverage region is scored again (``<key>/coverage_eval/``), not retrained.

With ``intensity_study`` three more rows train the full IMKD student with one intensity map each (density,
reflectance, activation): the notes ask to measure which reading of "intensity" helps.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from imkd_ros.atomic import atomic_write, atomic_write_text
from imkd_ros.distill.cache import TargetCache, file_sha256
from imkd_ros.distill.config import STAGES, DistillConfig
from imkd_ros.distill.intensity import INTENSITY_NAMES
from imkd_ros.train import TrainConfig, model_config_for, train

__all__ = ["AblationRow", "AblationResult", "ablation_rows", "run_ablation", "write_table", "METRIC_COLUMNS"]

#: (headline key, column title) of the metrics in the table, in order.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("nds", "NDS"),
    ("map", "mAP"),
    ("trans_err", "mATE"),
    ("scale_err", "mASE"),
    ("orient_err", "mAOE"),
    ("vel_err", "mAVE"),
    ("attr_err", "mAAE"),
)


_DEFAULT_KD = DistillConfig()
_DEFAULT_TRAIN = TrainConfig()


@dataclass(frozen=True)
class AblationRow:
    """One student of the table: ``key`` (folder name), ``label`` (table text), ``distill`` (None: no KD)."""

    key: str
    label: str
    distill: DistillConfig | None


@dataclass(frozen=True)
class AblationResult:
    """Rows (dicts as in ``ablation.json``), the teacher's row (or None) and the files written."""

    rows: list[dict[str, Any]]
    teacher: dict[str, Any] | None
    goals: dict[str, Any]
    markdown: Path
    json: Path
    png: Path


def ablation_rows(base: DistillConfig = _DEFAULT_KD, intensity_study: bool = False) -> list[AblationRow]:
    """The rows: no KD, + stage 1, + stages 1-2, + stages 1-3 (all with ``base``'s weights), and with
    ``intensity_study`` the full student with each intensity map alone."""
    rows = [
        AblationRow("no_kd", "student, no KD", None),
        AblationRow("stage1", "+ stage 1 (LiDAR->radar)", replace(base, stages=STAGES[:1])),
        AblationRow("stage12", "+ stages 1-2 (+ fused, response)", replace(base, stages=STAGES[:2])),
        AblationRow("stage123", "+ stages 1-3 (IMKD)", replace(base, stages=STAGES)),
    ]
    if intensity_study:
        for i, name in enumerate(INTENSITY_NAMES):
            mix = tuple(1.0 if j == i else 0.0 for j in range(3))
            rows.append(
                AblationRow(f"stage123_{name}", f"IMKD, {name} only", replace(base, stages=STAGES, intensity_mix=mix))
            )
    return rows


def _coverage_metrics(eval_dir: Path) -> tuple[dict[str, float], dict[str, Any]] | None:
    """Headline and per-weather headlines of the coverage region of an ``evaluate_detector`` output folder (None
    when it has none: written before coverage was scored)."""
    from imkd_ros.eval_detector import headline

    summary, weather = eval_dir / "coverage" / "metrics_summary.json", eval_dir / "coverage" / "by_weather.json"
    if not summary.is_file() or not weather.is_file():
        return None
    return headline(json.loads(summary.read_text())), json.loads(weather.read_text())


def _row_metrics(checkpoint: Path) -> dict[str, Any] | None:
    """Metrics and per-weather NDS of a finished row, grid and coverage region (None when not finished; coverage
    None when its validation output predates coverage)."""
    from imkd_ros.checkpoint import load_checkpoint

    val = Path(f"{checkpoint.with_suffix('')}_val")
    if not checkpoint.is_file() or not (val / "by_weather.json").is_file():
        return None
    meta = load_checkpoint(checkpoint).meta
    if not meta.get("metrics"):
        return None
    return {
        "meta": meta,
        "metrics": meta["metrics"],
        "by_weather": json.loads((val / "by_weather.json").read_text()),
        "coverage": _coverage_metrics(val),
    }


def _score_coverage(
    checkpoint: Path, out_dir: Path, data: Path, cfg: TrainConfig, device: str
) -> tuple[dict[str, float], dict[str, Any]]:
    """Coverage-region metrics of a finished row whose validation output predates coverage: the checkpoint scored
    again on the validation split into ``out_dir``."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.detector import Detector
    from imkd_ros.eval_detector import evaluate_detector

    det = Detector.from_checkpoint(checkpoint, device=device)
    reader = NuScenesReader(data, cfg.version, radar_sweeps=cfg.radar_sweeps, load_lidar=False)
    evaluate_detector(
        det, None, out_dir, dataroot=data, version=cfg.version, split=cfg.val_split, reader=reader, bev_pngs=0
    )
    got = _coverage_metrics(out_dir)
    assert got is not None  # evaluate_detector writes both
    return got


def _teacher_row(teacher: Path, out: Path, data: Path, cfg: TrainConfig, device: str) -> dict[str, Any]:
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.detector import Detector
    from imkd_ros.eval_detector import evaluate_detector, headline

    out_dir = out / "teacher_eval"
    digest = out_dir / "teacher_row.json"
    sha = file_sha256(teacher)
    if digest.is_file():
        row = json.loads(digest.read_text())
        if row.get("sha256") == sha and row.get("coverage_metrics") is not None:
            return row
    det = Detector.from_checkpoint(teacher, device=device)
    reader = NuScenesReader(
        data,
        cfg.version,
        radar_sweeps=cfg.radar_sweeps,
        lidar_sweeps=det.config.lidar.sweeps,
        load_image=False,
        load_lidar=True,
    )
    res = evaluate_detector(
        det, None, out_dir, dataroot=data, version=cfg.version, split=cfg.val_split, reader=reader, bev_pngs=1
    )
    row = {
        "key": "teacher",
        "label": "LiDAR teacher (reference)",
        "checkpoint": str(teacher),
        "sha256": sha,
        "metrics": headline(res["summary"]),
        "by_weather": res["by_weather"],
        "coverage_metrics": headline(res["coverage_summary"]),
        "coverage_by_weather": res["coverage_by_weather"],
    }
    atomic_write_text(digest, json.dumps(row, indent=2) + "\n")
    return row


def _fmt(v: Any, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _goals(rows: list[dict[str, Any]], teacher: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's goals on the coverage region (``region``), with the grid's gain and gap beside them."""
    nds = {r["key"]: r["coverage_metrics"]["nds"] for r in rows}
    grid = {r["key"]: r["metrics"]["nds"] for r in rows}
    goals: dict[str, Any] = {"region": "coverage"}
    if "no_kd" in grid and "stage123" in grid:
        goals["imkd_gain_nds_grid"] = grid["stage123"] - grid["no_kd"]
        if teacher is not None:
            goals["teacher_gap_nds_grid"] = teacher["metrics"]["nds"] - grid["no_kd"]
    if "no_kd" in nds and "stage123" in nds:
        gain = nds["stage123"] - nds["no_kd"]
        goals["imkd_gain_nds"] = gain
        goals["imkd_gain_at_least_0.05"] = gain >= 0.05
        chain = [nds[k] for k in ("no_kd", "stage1", "stage12", "stage123") if k in nds]
        goals["each_stage_adds"] = all(b > a for a, b in zip(chain, chain[1:], strict=False))
        if teacher is not None:
            gap = teacher["coverage_metrics"]["nds"] - nds["no_kd"]
            goals["teacher_gap_nds"] = gap
            goals["gap_closed"] = gain / gap if gap > 0 else None
            goals["closes_half_the_gap"] = bool(gap > 0 and gain >= 0.5 * gap)
    return goals


def write_table(
    out: Path, rows: list[dict[str, Any]], teacher: dict[str, Any] | None, schedule: dict[str, Any]
) -> tuple[Path, Path, Path, dict[str, Any]]:
    """Write ``ablation.md``, ``ablation.json`` and ``ablation.png`` under ``out``; returns their paths and the goal
    checks."""
    goals = _goals(rows, teacher)
    all_rows = rows + ([teacher] if teacher else [])
    weathers = sorted({w for r in all_rows for w in r["coverage_by_weather"]})
    base = next((r["coverage_metrics"]["nds"] for r in rows if r["key"] == "no_kd"), None)
    head = ["row", "stages"] + [t for _, t in METRIC_COLUMNS] + ["NDS grid", "mAP grid", "ΔNDS vs no KD"]
    head += [f"NDS {w}" for w in weathers]
    lines = [
        "# IMKD ablation",
        "",
        "Same data, schedule and seed for every student row; devkit metrics on the validation split "
        f"`{schedule.get('val_split')}` in the students' coverage region (the BEV grid within the camera's and the "
        "radar's fields of view, from calibration: where students and teacher can be compared), NDS and mAP on "
        "the whole BEV grid beside them (the teacher sees all of it, the students not).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    for r in all_rows:
        m, g = r["coverage_metrics"], r["metrics"]
        delta = "" if base is None or r["key"] in ("no_kd", "teacher") else f"{m['nds'] - base:+.4f}"
        cells = [r["label"], ",".join(s.replace("stage", "") for s in r.get("stages", [])) or "–"]
        cells += [_fmt(m.get(k)) for k, _ in METRIC_COLUMNS] + [_fmt(g.get("nds")), _fmt(g.get("map")), delta]
        cells += [_fmt(r["coverage_by_weather"].get(w, {}).get("nds")) for w in weathers]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Schedule: " + ", ".join(f"{k} {v}" for k, v in schedule.items()), ""]
    if "imkd_gain_nds" in goals:
        lines.append("Goals (issue 4), coverage region:")
        lines.append(
            f"- IMKD (stages 1-3) over no KD: {goals['imkd_gain_nds']:+.4f} NDS "
            f"({'meets' if goals['imkd_gain_at_least_0.05'] else 'misses'} the +0.05 goal)"
        )
        lines.append(f"- each stage adds: {'yes' if goals['each_stage_adds'] else 'no'}")
        lines.append(f"- on the whole grid: IMKD over no KD {goals['imkd_gain_nds_grid']:+.4f} NDS")
        if "teacher_gap_nds" in goals:
            closed = goals["gap_closed"]
            lines.append(
                f"- teacher gap {goals['teacher_gap_nds']:+.4f} NDS, closed "
                f"{'–' if closed is None else f'{100 * closed:.0f}%'} "
                f"({'meets' if goals['closes_half_the_gap'] else 'misses'} the one-half goal)"
            )
        lines.append("")
    md = out / "ablation.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    js = out / "ablation.json"
    table = {"schedule": schedule, "rows": rows, "teacher": teacher, "goals": goals}
    atomic_write_text(js, json.dumps(table, indent=2) + "\n")
    png = out / "ablation.png"
    _plot(png, all_rows, weathers)
    return md, js, png, goals


def _plot(path: Path, rows: list[dict[str, Any]], weathers: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [r["key"] for r in rows]
    x = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), dpi=100)
    bars_of = (("coverage_metrics", "nds", "NDS"), ("coverage_metrics", "map", "mAP"), ("metrics", "nds", "NDS grid"))
    for k, (region, key, title) in enumerate(bars_of):
        vals = [r[region][key] for r in rows]
        bars = ax1.bar(x + (k - 1) * 0.27, vals, 0.27, label=title, hatch="//" if region == "metrics" else None)
        ax1.bar_label(bars, fmt="%.3f", fontsize=6)
    ax1.set_xticks(x, labels, rotation=20)
    ax1.set_ylabel("score")
    ax1.set_title("IMKD ablation (val, coverage region; grid hatched)")
    ax1.legend(fontsize=8)
    width = 0.8 / max(1, len(weathers))
    for k, w in enumerate(weathers):
        vals = [r["coverage_by_weather"].get(w, {}).get("nds", np.nan) for r in rows]
        ax2.bar(x + (k - (len(weathers) - 1) / 2) * width, vals, width, label=w)
    ax2.set_xticks(x, labels, rotation=20)
    ax2.set_ylabel("NDS")
    ax2.set_title("NDS per weather (coverage region)")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def run_ablation(
    data: str | Path,
    targets: str | Path,
    out: str | Path,
    *,
    train_config: TrainConfig = _DEFAULT_TRAIN,
    size: str = "default",
    base: DistillConfig = _DEFAULT_KD,
    teacher: str | Path | None = None,
    intensity_study: bool = False,
    device: str = "cpu",
    progress: bool = True,
    reuse: bool = True,
) -> AblationResult:
    """Train and score every row of :func:`ablation_rows`, then write the table (see the module docstring).

    Args:
        data: the dataroot.
        targets: the teacher-target cache of the training split.
        out: output folder.
        train_config: the one schedule and seed of every row.
        size: ``"default"`` or ``"tiny"`` (tests) student.
        base: weights and intensity mix of the distilled rows.
        teacher: teacher checkpoint scored as the reference row; None: the cache's teacher when its file still
            exists with the recorded sha256, else no teacher row.
        intensity_study: add the three single-intensity rows.
        device: ``"cpu"`` or ``"cuda"``.
        reuse: keep finished rows (same schedule and distillation) and resume interrupted ones.
    """
    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = TargetCache(targets)
    if teacher is None:
        info = cache.header.teacher
        cand = Path(info.get("checkpoint", ""))
        if info.get("checkpoint") and cand.is_file() and file_sha256(cand) == info.get("sha256"):
            teacher = cand
    mc = model_config_for("fusion", size)
    schedule = {
        "data": str(data),
        "targets": str(targets),
        "size": size,
        **{k: v for k, v in asdict(train_config).items() if k in ("epochs", "batch_size", "lr", "seed", "max_steps")},
        "train_split": train_config.train_split,
        "val_split": train_config.val_split,
    }
    rows: list[dict[str, Any]] = []
    for row in ablation_rows(base, intensity_study):
        ckpt = out / row.key / "student.pt"
        kd_dict = None if row.distill is None else row.distill.to_dict()
        done = _row_metrics(ckpt) if reuse else None
        if done is not None and (
            done["meta"].get("train") != asdict(train_config) or done["meta"].get("distill") != kd_dict
        ):
            done = None
        t0 = time.perf_counter()
        if done is None:
            if progress:
                print(f"ablate: training {row.key} ({row.label})", file=sys.stderr)
            train(
                data,
                ckpt,
                mc,
                train_config,
                resume=reuse,
                device=device,
                progress=progress,
                command=f"imkd ablate row {row.key}",
                distill=row.distill,
                targets=None if row.distill is None else targets,
            )
            done = _row_metrics(ckpt)
            if done is None:
                raise RuntimeError(f"ablate: row {row.key} finished without validation metrics in {ckpt}")
        coverage = done["coverage"] or _score_coverage(
            ckpt, out / row.key / "coverage_eval", data, train_config, device
        )
        rows.append(
            {
                "key": row.key,
                "label": row.label,
                "stages": [] if row.distill is None else list(row.distill.stages),
                "distill": kd_dict,
                "checkpoint": str(ckpt),
                "metrics": done["metrics"],
                "by_weather": {w: m for w, m in done["by_weather"].items()},
                "coverage_metrics": coverage[0],
                "coverage_by_weather": coverage[1],
                "train_seconds": done["meta"].get("seconds"),
                "wall_seconds_this_call": time.perf_counter() - t0,
            }
        )
    teacher_row = _teacher_row(Path(teacher), out, data, train_config, device) if teacher is not None else None
    md, js, png, goals = write_table(out, rows, teacher_row, schedule)
    return AblationResult(rows, teacher_row, goals, md, js, png)
