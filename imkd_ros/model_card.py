"""Model cards for shipped checkpoints: Markdown written from the checkpoint's meta and ``imkd eval`` outputs, so
the figures in a card are the measured ones."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from imkd_ros.atomic import atomic_write_text
from imkd_ros.checkpoint import load_checkpoint

__all__ = ["write_model_card"]

_COLS = (
    ("nds", "NDS"),
    ("map", "mAP"),
    ("trans_err", "mATE"),
    ("scale_err", "mASE"),
    ("orient_err", "mAOE"),
    ("vel_err", "mAVE"),
    ("attr_err", "mAAE"),
)


def _headline(eval_dir: Path) -> dict[str, float]:
    s = json.loads((eval_dir / "metrics_summary.json").read_text())
    scope = s.get("eval_scope", {})
    row = {"nds": s["nd_score"], "map": s["mean_ap"], "gt_boxes": scope.get("gt_boxes")}
    row["skipped"] = len(scope.get("skipped_samples", []))
    row.update(s["tp_errors"])
    return row


def _regions(eval_dir: Path) -> list[tuple[str, Path]]:
    """``(region, folder)`` of an ``imkd eval`` output: the coverage region first where it was scored, the grid."""
    cov = eval_dir / "coverage"
    return ([("coverage", cov)] if (cov / "metrics_summary.json").is_file() else []) + [("grid", eval_dir)]


def _unlabelled_lines(unlabelled: Mapping | None) -> list[str]:
    """The card's line on unlabelled training frames (none for a run on labelled frames only)."""
    if not unlabelled:
        return []
    return [
        f"- unlabelled drives: split `{unlabelled.get('split')}` ({unlabelled.get('frames', '?')} frames, "
        f"{unlabelled.get('scenes', '?')} scenes) learnt from the teacher: pseudo-labels = its boxes with score >= "
        f"{unlabelled.get('threshold')} ({unlabelled.get('pseudo_boxes', '?')} boxes, velocity not learnt from them), "
        f"weight {unlabelled.get('weight')}; {unlabelled.get('mixing', '')}"
    ]


def _skipped_lines(skipped: list[Mapping] | None, listed: int = 5) -> list[str]:
    """The card's line on training frames left out for bad input files (``--skip-bad-frames``); none if none."""
    if not skipped:
        return []
    names = "; ".join(f"{s.get('sample')} ({s.get('reason')})" for s in skipped[:listed])
    more = f"; and {len(skipped) - listed} more" if len(skipped) > listed else ""
    return [f"- skipped frames (bad input files, `--skip-bad-frames`): {len(skipped)}: {names}{more}"]


def write_model_card(
    path: str | Path,
    checkpoint: str | Path,
    title: str,
    data_command: str,
    evals: Mapping[str, str | Path],
    notes: str = "",
    evaluated_on: str = "synth_val",
) -> Path:
    """Write ``path`` (Markdown) for ``checkpoint``.

    Args:
        checkpoint: the shipped checkpoint (its meta gives the training command, time, machine).
        title: first heading.
        data_command: the command that generated the training data (with its seed).
        evals: row name -> an ``imkd eval`` output folder (``metrics_summary.json``, ``by_weather.json``, and the
            same under ``coverage/``); the first is the checkpoint's own. Each gets a row per region: coverage
            (what the model's sensors see; absent in folders written before it was scored) and grid.
        notes: free text appended at the end.
        evaluated_on: the validation data the ``evals`` folders scored (heading of the metrics table).
    """
    ckpt = load_checkpoint(checkpoint)
    meta = ckpt.meta
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16]
    size_mb = Path(checkpoint).stat().st_size / 1e6
    lines = [
        f"# {title}",
        "",
        f"- file: `{Path(checkpoint).name}` ({size_mb:.1f} MB, sha256 {digest}...), kind `{ckpt.kind}`, "
        f"model `{ckpt.config.name}` (modalities {', '.join(ckpt.config.modalities)}), "
        f"{sum(v.numel() for v in ckpt.state_dict.values() if v.is_floating_point()) / 1e6:.2f} M values",
        "- loads with `Detector.from_checkpoint(path)` (`torch.load(..., weights_only=True)`); the model config "
        "travels inside",
        f"- data: `{data_command}`",
        f"- training: `{meta.get('command', '?')}`",
        f"- schedule: {json.dumps(meta.get('train', {}))}",
        f"- wall time: {meta.get('seconds', float('nan')) / 60:.1f} min on {meta.get('machine', '?')}, "
        f"{meta.get('train_frames', '?')} training frames, world size {meta.get('world_size', 1)}",
        *_unlabelled_lines(meta.get("unlabelled")),
        *_skipped_lines(meta.get("skipped_frames")),
        "",
        f"## Metrics ({evaluated_on}, official nuscenes-devkit DetectionEval)",
        "",
        "Two regions: **coverage**, the part of the BEV grid the model's sensors see (the grid within the fields of "
        "view of its camera and/or radar, from the calibration; the teacher's LiDAR sees all of it), the fair "
        "region for comparing students with the teacher; **grid**, the whole BEV grid.",
        "",
        "| model | region | " + " | ".join(c for _, c in _COLS) + " | GT boxes |",
        "|---|---|" + "---|" * len(_COLS) + "---|",
    ]
    weather_rows = []
    skipped_evals = []
    for name, d in evals.items():
        for region, rd in _regions(Path(d)):
            h = _headline(rd)
            if h["skipped"] and region == "grid":
                skipped_evals.append(f"- {name}: {h['skipped']} frames skipped for bad input files (`{d}`)")
            cells = " | ".join(f"{h[k]:.3f}" for k, _ in _COLS)
            lines.append(f"| {name} | {region} | {cells} | {h['gt_boxes'] if h['gt_boxes'] is not None else '?'} |")
            bw = rd / "by_weather.json"
            if bw.is_file():
                for w, m in json.loads(bw.read_text()).items():
                    weather_rows.append((name, region, w, m))
    if skipped_evals:
        lines += ["", "Frames left out of the scores (see `skipped_frames.json` in the eval folder):", *skipped_evals]
    if weather_rows:
        lines += [
            "",
            "## Per weather (NDS / mAP)",
            "",
            "| model | region | weather | NDS | mAP | mATE | mAVE |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, region, w, m in weather_rows:
            lines.append(
                f"| {name} | {region} | {w} | {m['nds']:.3f} | {m['map']:.3f} | {m['trans_err']:.3f} "
                f"| {m['vel_err']:.3f} |"
            )
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    return atomic_write_text(path, "\n".join(lines) + "\n")
