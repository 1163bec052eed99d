"""``imkd``: the one command-line entry point, one subcommand per job (``imkd <verb> --help``).

Each subcommand parses its arguments and calls one library function; no logic lives here. Errors caused by the
user's input (missing files, bad arguments, malformed data) print one line ``imkd <verb>: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imkd_ros.cli.options import add_dataset_arguments, add_device_argument, picked

__all__ = ["main", "build_parser"]


def _cmd_synth(args: argparse.Namespace) -> int:
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.data.synth.writer import devkit_scene_names

    weathers = tuple(w.strip() for w in args.weather.split(",") if w.strip())
    summary = write_dataset(
        Path(args.out),
        **picked(args, "scenes", "samples_per_scene", "seed", "version", "workers", "overwrite", "rig"),
        weathers=weathers,
        camera_sweeps=not args.no_camera_sweeps,
        progress=True,
        unlabelled_scenes=args.unlabelled_scenes,
        scene_names=devkit_scene_names(args.scene_names) if args.scene_names else None,
    )
    print(summary)
    return 0


def _cmd_label_scarce(args: argparse.Namespace) -> int:
    from imkd_ros.data.splits import add_label_scarce_splits

    new = add_label_scarce_splits(args.data, args.fraction, source=args.split, version=args.version)
    print(json.dumps({name: len(scenes) for name, scenes in new.items()}))
    return 0


def _cmd_eval_results(args: argparse.Namespace) -> int:
    from imkd_ros.core.atomic import atomic_write_text
    from imkd_ros.evaluation.evaluate import evaluate_results

    out = Path(args.out)
    summary = evaluate_results(args.data, args.version, args.split, args.results, out.parent)
    if out.name != "metrics_summary.json":
        atomic_write_text(out, json.dumps(summary, indent=2))
    print(f"NDS {summary['nd_score']:.4f}  mAP {summary['mean_ap']:.4f}  -> {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from imkd_ros.apps.bench import run_benchmarks

    results = run_benchmarks(only=args.only, repeats=args.repeats)
    text = json.dumps(results, indent=2, sort_keys=True)
    if args.out:
        from imkd_ros.core.atomic import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from imkd_ros.inference.export_onnx import export_checkpoint
    from imkd_ros.inference.ort_backend import OrtStudent, torch_parity
    from imkd_ros.model.checkpoint import load_checkpoint

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to replace it)")
    export_checkpoint(args.checkpoint, out, opset=args.opset, scatter=args.scatter)
    runtime = OrtStudent(out, threads=args.threads)
    diff = torch_parity(load_checkpoint(args.checkpoint).build(), runtime)
    print(
        f"{out}: {out.stat().st_size / 1e6:.1f} MB, opset {args.opset}, {args.scatter} scatters, "
        f"inputs {', '.join(runtime.input_names)}; "
        f"onnxruntime vs PyTorch on example inputs: max |heatmap diff| {diff['heatmap']:.1e}, "
        f"max |regression diff| {diff['regression']:.1e}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from imkd_ros.apps.demo import run_demo

    run_demo(Path(args.out), checkpoint=args.checkpoint, device=args.device, rate=args.rate, rig=args.rig)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from imkd_ros.training.train import print_result, run_from_args

    print_result(run_from_args(args, command="imkd " + " ".join(sys.argv[1:])))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from imkd_ros.evaluation.eval_detector import evaluate_detector, headline
    from imkd_ros.inference.detector import Detector

    det = Detector.from_checkpoint(
        args.checkpoint, device=args.device, backend=args.backend, precision=args.precision, threads=args.threads
    )
    res = evaluate_detector(
        det,
        None,
        args.out,
        dataroot=args.data,
        **picked(args, "version", "split", "bev_pngs", "skip_bad_frames"),
    )
    for name, key in (("coverage", "coverage_summary"), ("grid", "summary")):
        h = headline(res[key])
        print(
            f"{name:8s} NDS {h['nds']:.4f}  mAP {h['map']:.4f}  mATE {h['trans_err']:.3f}  mAVE {h['vel_err']:.3f}  "
            f"({res[key]['eval_scope']['gt_boxes']} GT boxes)"
        )
    print(f"({res['frames']} frames, {res['latency_ms_median']:.1f} ms/frame median) -> {args.out}")
    _print_skipped(res["skipped_frames"], Path(args.out) / "skipped_frames.json")
    for w, m in res["by_weather"].items():
        c = res["coverage_by_weather"].get(w)
        cov = f"  coverage NDS {c['nds']:.4f}  mAP {c['map']:.4f}" if c else ""
        print(f"  {w:8s}{cov}  grid NDS {m['nds']:.4f}  mAP {m['map']:.4f}")
    return 0


def _print_skipped(skipped: Sequence[dict[str, str]], listed_in: Path | str) -> None:
    """One line per skipped frame (``--skip-bad-frames``) on stderr, and where the list is kept."""
    for s in skipped:
        print(f"skipped frame {s['sample']} ({s['scene']}): {s['reason']}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} frame(s) skipped for bad input files; listed in {listed_in}", file=sys.stderr)


def _cmd_compare(args: argparse.Namespace) -> int:
    from imkd_ros.evaluation.compare import compare_detectors

    res = compare_detectors(
        args.data,
        args.version,
        args.split,
        args.checkpoint,
        args.out,
        **picked(args, "bootstrap", "seed", "batch_size", "device"),
        runtimes=args.runtime or (),
    )
    for region in res.regions.values():
        print(f"{region.region}: {region.samples} samples, {region.scenes} scenes, {region.gt_boxes} GT boxes")
        for m in region.models:
            d = m.deltas["nds"]
            print(
                f"  {m.name:24s} NDS {m.headline['nds']:.4f}  mAP {m.headline['map']:.4f}  "
                f"dNDS {d.value:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
            )
    print(f"-> {res.markdown}, {res.json}, {res.png}")
    return 0


def _cmd_teacher_targets(args: argparse.Namespace) -> int:
    from imkd_ros.cli.options import cache_summary, rounded, run_teacher_targets
    from imkd_ros.distill.targets import build_target_cache

    options = picked(args, "split", "version", "radar_sweeps", "skip_bad_frames", "tta")
    rep = run_teacher_targets(args, build_target_cache, args.data, **options)
    _print_skipped([s.to_dict() for s in rep.skipped], Path(args.out) / "index.json")
    print(json.dumps(rounded({**cache_summary(rep), "skipped_frames": len(rep.skipped)}, 1)))
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from imkd_ros.apps.ablate import STUDY_ROWS, StudyPlan, run_study, score_study
    from imkd_ros.cli.options import set_torch_threads
    from imkd_ros.training.train import parse_image_size

    set_torch_threads(args.threads)
    keys = (
        tuple(k.strip() for k in args.rows.split(",") if k.strip()) if args.rows else tuple(r.key for r in STUDY_ROWS)
    )
    seeds = {}
    for item in (args.row_seeds or "").split(","):
        if item.strip():
            key, _, n = item.partition("=")
            seeds[key.strip()] = tuple(range(int(n)))
    plan = StudyPlan(
        data=Path(args.data),
        out=Path(args.out),
        fraction=args.labelled_fraction,
        default_seeds=tuple(range(args.seeds)),
        seeds=seeds,
        **picked(args, "steps", "teacher_steps", "teacher_augment", "tta", "jobs", "precision", "grid"),
        **picked(args, "size", "version", "device"),
        image_size=parse_image_size(args.image_size) if args.image_size else None,
        rows=keys,
    )
    trained = run_study(plan)
    report = score_study(
        trained["rows"],
        trained["teacher"],
        args.val_data,
        args.out,
        split=args.val_split,
        version=args.val_version,
        bootstrap=args.bootstrap,
        seconds=trained["seconds"],
        commands={"study": "imkd " + " ".join(sys.argv[1:])},
        shipped=args.shipped_row,
    )
    for r in report["regions"]["coverage"]["rows"]:
        m, d = r["mean"], r["delta"]["nds"]
        print(f"{r['key']:8s} x{r['seeds']}  NDS {m['nds']:.4f}  mAP {m['map']:.4f}  mAVE {m['vel_err']:.3f}  "
              f"dNDS {d['value']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]")  # fmt: skip
    print(json.dumps(report["goals"]))
    print(f"-> {Path(args.out) / 'ablation.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imkd", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="<verb>")
    _add_dataset_verbs(sub)
    _add_model_verbs(sub)
    _add_teacher_targets_verb(sub)
    _add_ablate_verb(sub)
    _add_tool_verbs(sub)
    from imkd_ros.cli.bag import add_bag_parser  # `imkd bag export|teacher-targets|replay-eval`

    add_bag_parser(sub)
    return p


def _add_dataset_verbs(sub: Any) -> None:
    """``imkd synth``, ``imkd label-scarce``, ``imkd eval-results``."""
    s = sub.add_parser("synth", help="write a synthetic dataset in the nuScenes on-disk format")
    s.add_argument("--out", required=True, help="dataroot to create (must not exist or be empty)")
    s.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4)")
    s.add_argument("--samples-per-scene", type=int, default=10, help="keyframes (2 Hz) per scene (default 10)")
    s.add_argument("--seed", type=int, default=0, help="random seed; the output is deterministic for a seed")
    s.add_argument("--weather", default="clear,rain,fog,night", help="comma list cycled over scenes")
    s.add_argument("--version", default="v1.0-synth", help="version folder name (default v1.0-synth)")
    s.add_argument("--no-camera-sweeps", action="store_true", help="write camera images at keyframes only")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core)")
    s.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty directory")
    s.add_argument(
        "--unlabelled-scenes",
        type=int,
        default=0,
        help="write the last K non-validation scenes without annotations (split synth_unlabelled; default 0)",
    )
    s.add_argument(
        "--rig",
        default="front",
        choices=("front", "nuscenes"),
        help="sensors: front (one camera, one radar; default) or nuscenes (6 cameras, 5 radars); LiDAR in both",
    )
    s.add_argument(
        "--scene-names",
        default=None,
        choices=("mini",),
        help="name the scenes as a devkit split set (mini: the 10 scenes of mini_train + mini_val; needs --scenes 10)"
        " so that --version v1.0-mini answers to the devkit's split names",
    )
    s.set_defaults(func=_cmd_synth)

    ls = sub.add_parser(
        "label-scarce", help="split a labelled split into scarce<P>_labelled / scarce<P>_unlabelled (splits.json)"
    )
    add_dataset_arguments(ls, "synth_train", "the labelled split to divide")
    ls.add_argument("--fraction", type=float, default=0.25, help="share of each weather's scenes labelled")
    ls.set_defaults(func=_cmd_label_scarce)

    e = sub.add_parser("eval-results", help="score a results JSON with the nuscenes-devkit detection eval")
    add_dataset_arguments(e, "synth_val")
    e.add_argument("--results", required=True, help="results JSON in the devkit submission format")
    e.add_argument("--out", required=True, help="METRICS.json to write (the devkit files go beside it)")
    e.set_defaults(func=_cmd_eval_results)


def _add_model_verbs(sub: Any) -> None:
    """``imkd train``, ``imkd eval``, ``imkd compare``."""
    from imkd_ros.data.check import add_skip_bad_frames_argument

    t = sub.add_parser("train", help="train the LiDAR teacher or a radar-camera student")
    from imkd_ros.training.train import add_train_arguments

    add_train_arguments(t)
    t.set_defaults(func=_cmd_train)

    v = sub.add_parser("eval", help="run a checkpoint over a split and score it with the devkit")
    add_dataset_arguments(v, "synth_val")
    v.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    v.add_argument("--out", required=True, help="output folder (results.json, metrics_summary.json, BEV PNGs)")
    add_device_argument(v)
    v.add_argument(
        "--backend", default="torch", help="inference backend: torch, onnxruntime, openvino or auto (default torch)"
    )
    v.add_argument("--precision", default="fp32", help="numeric precision the backend runs (fp32, bf16: see README)")
    v.add_argument("--threads", type=int, default=None, help="onnxruntime/openvino threads (default: theirs)")
    v.add_argument("--bev-pngs", type=int, default=3, help="BEV pictures to draw")
    add_skip_bad_frames_argument(v, "skipped_frames.json and the metrics' eval_scope")
    v.set_defaults(func=_cmd_eval)

    c = sub.add_parser(
        "compare", help="compare checkpoints on one split: devkit metrics and paired bootstrap CIs over scenes"
    )
    add_dataset_arguments(c, "synth_val")
    c.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="model checkpoint (.pt); repeat it, the first is the reference",
    )
    c.add_argument("--out", required=True, help="output folder (per model results and metrics, compare.md/.json/.png)")
    c.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="seed of the scene draws (default 0)")
    c.add_argument("--batch-size", type=int, default=4, help="frames per forward pass")
    add_device_argument(c)
    c.add_argument(
        "--runtime",
        action="append",
        help="BACKEND[:PRECISION] a checkpoint runs on (e.g. openvino:bf16); once for all, or once per --checkpoint "
        "in order (default torch:fp32)",
    )
    c.set_defaults(func=_cmd_compare)


def _add_teacher_targets_verb(sub: Any) -> None:
    """``imkd teacher-targets``."""
    from imkd_ros.cli.options import add_teacher_target_arguments
    from imkd_ros.data.check import add_skip_bad_frames_argument

    tt = sub.add_parser("teacher-targets", help="run the LiDAR teacher once over a split into a teacher-target cache")
    add_dataset_arguments(tt, "synth_train", "split(s) to cover, comma list (e.g. synth_train,synth_unlabelled)")
    tt.add_argument("--radar-sweeps", type=int, default=6, help="reader setting (as in training)")
    add_teacher_target_arguments(tt)
    tt.add_argument(
        "--tta",
        action="store_true",
        help="merge each frame's teacher head with its left-right mirrored pass (better pseudo-labels, 2x time)",
    )
    add_skip_bad_frames_argument(tt, "the cache header")
    tt.set_defaults(func=_cmd_teacher_targets)


def _add_ablate_verb(sub: Any) -> None:
    """``imkd ablate``."""
    a = sub.add_parser(
        "ablate", help="the label-scarce distillation study: teacher, no KD / stages / unlabelled drives / oracle rows"
    )
    a.add_argument("--data", required=True, help="training dataroot (imkd synth); its synth_train is divided")
    a.add_argument("--val-data", required=True, help="validation dataroot never trained on (the large val set)")
    a.add_argument("--val-split", default="synth_all", help="split of --val-data (default synth_all)")
    a.add_argument("--out", required=True, help="study folder (checkpoints, targets, eval, ablation.md/.json/.png)")
    a.add_argument("--labelled-fraction", type=float, default=0.25, help="share of drives labelled (default 0.25)")
    a.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    a.add_argument("--row-seeds", default=None, help="per-row seed counts, e.g. kd1=1,kd1-2=1,pseudo=1")
    a.add_argument("--rows", default=None, help="comma list of row keys (default: all)")
    a.add_argument("--steps", type=int, default=1000, help="optimiser steps of every student (default 1000)")
    a.add_argument("--teacher-steps", type=int, default=1600, help="optimiser steps of the teacher (default 1600)")
    a.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),  # imkd_ros.model.precision.PRECISIONS (not imported: the CLI starts without torch)
        help="training precision of every model (bf16: bfloat16 autocast forward, float32 losses and weights)",
    )
    a.add_argument(
        "--grid",
        default="front",
        choices=("front", "surround"),  # imkd_ros.training.train.GRIDS
        help="BEV grid of every model: front, or surround (+-51.2 m) for a 360-degree rig (imkd synth --rig nuscenes)",
    )
    a.add_argument("--image-size", default=None, help="students' camera input WIDTHxHEIGHT, e.g. 352x128")
    a.add_argument(
        "--teacher-augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the teacher with rotation/scale augmentation (default on)",
    )
    a.add_argument("--tta", action="store_true", help="gather the teacher's targets with mirror TTA")
    a.add_argument("--shipped-row", default="imkd-sv", help="the row whose goals are checked (default imkd-sv)")
    a.add_argument("--size", default="default", choices=("default", "tiny"), help="model size (tiny: tests)")
    a.add_argument("--version", default="v1.0-synth", help="version of --data")
    a.add_argument("--val-version", default="v1.0-synth", help="version of --val-data")
    a.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default 2000)")
    add_device_argument(a)
    a.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    a.add_argument(
        "--jobs", type=int, default=1, help="training runs at a time, one process of one thread each (default 1)"
    )
    a.set_defaults(func=_cmd_ablate)


def _add_tool_verbs(sub: Any) -> None:
    """``imkd bench``, ``imkd export-onnx``, ``imkd demo``."""
    b = sub.add_parser("bench", help="run benchmarks and write flat JSON")
    b.add_argument("--only", default=None, help="comma list of benchmark names (default: all)")
    b.add_argument("--repeats", type=int, default=3, help="repeats per benchmark; medians are reported")
    b.add_argument("--out", default=None, help="JSON file to write")
    b.set_defaults(func=_cmd_bench)

    x = sub.add_parser("export-onnx", help="export a student checkpoint to ONNX (standard ops) and check it")
    x.add_argument("--checkpoint", required=True, help="student checkpoint (.pt)")
    x.add_argument("--out", required=True, help="MODEL.onnx to write")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18, default 18)")
    x.add_argument(
        "--scatter",
        default="nd",
        choices=("nd", "elements"),
        help="BEV pooling as row-wise ScatterND (default; fast in onnxruntime) or ScatterElements (for TensorRT)",
    )
    x.add_argument("--threads", type=int, default=None, help="onnxruntime threads of the parity check")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    x.set_defaults(func=_cmd_export_onnx)

    d = sub.add_parser("demo", help="the main job on the embedded synthetic default")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    d.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped model)")
    d.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="the detector node's device")
    d.add_argument("--rate", type=float, default=1.0, help="playback speed, x real time (default 1)")
    d.add_argument("--rig", default="front", choices=("front", "nuscenes"), help="sensor rig (default front)")
    d.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """``imkd <verb>``: the project's own errors (:class:`~imkd_ros.core.errors.ImkdError`: bad files, arguments,
    messages, parameters) and missing or existing files are one line on stderr and exit 2; anything else (a bug) keeps
    its traceback."""
    from imkd_ros.core.errors import ImkdError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ImkdError, FileNotFoundError, FileExistsError) as exc:
        print(f"imkd {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"imkd {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
