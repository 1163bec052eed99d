"""The outputs of ``imkd bag replay-eval``: report, pictures and an output bag, all written without ROS.

Into the output folder:

* ``report.json`` (every figure) and ``report.md`` (the same for people): NDS, mAP and the TP errors, frames fed /
  evaluated / without detections, frames dropped by sync with their reasons (sync event kinds) and example
  sentences, rejected messages, latency percentiles, throughput (frames/s, x real time), live figures;
* the devkit's ``metrics_summary.json`` and ``metrics_details.json`` (written by the evaluation) for the model's
  BEV grid, and the same under ``coverage/`` for the part of the grid its sensors see
  (:mod:`imkd_ros.evaluation.coverage`);
* ``bev/<n>_<key>.png``: BEV pictures of evenly spread evaluated frames (:func:`imkd_ros.evaluation.viz.draw_bev`: radar
  points as the detector saw them, ground truth green, detections red) and ``bev.gif``, those frames in time order;
* ``detections/``: an MCAP bag with ``/detector_node/output/objects`` (``vision_msgs/Detection3DArray``),
  ``/detector_node/output/detected_objects`` (``autoware_perception_msgs/DetectedObjects``, with the velocities) and
  ``/detector_node/output/markers`` (``visualization_msgs/MarkerArray``, as the node draws them) at the camera
  stamps, ``base_link`` frame, for RViz or Foxglove next to the input bag.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.atomic import atomic_dir, atomic_write_text
from imkd_ros.core.types import Boxes, Frame

__all__ = [
    "OBJECTS_TOPIC",
    "DETECTED_OBJECTS_TOPIC",
    "MARKERS_TOPIC",
    "new_msg",
    "markers_msg",
    "write_output_bag",
    "percentiles",
    "write_bev",
    "write_report",
]

#: Topics of the output bag (the detector node's output names).
OBJECTS_TOPIC = "/detector_node/output/objects"
DETECTED_OBJECTS_TOPIC = "/detector_node/output/detected_objects"
MARKERS_TOPIC = "/detector_node/output/markers"
_GIF_MS = 500  # per frame (the keyframe period)


def new_msg(store: Any, typename: str, **values: Any) -> Any:
    """A rosbags message of ``typename`` with ``values`` and every other field at its ROS default (0, False, "",
    empty sequences, zero arrays, nested messages likewise, a quaternion's ``w`` 1). rosbags' message classes have
    no defaults."""
    from rosbags.typesys.store import Nodetype

    def default(desc: Any) -> Any:
        kind, arg = desc
        if kind == Nodetype.NAME:
            return new_msg(store, arg)
        if kind == Nodetype.BASE:
            name = arg[0]
            return "" if name in ("string", "wstring") else False if name == "bool" else 0.0 if "float" in name else 0
        sub, size = arg
        if sub[0] == Nodetype.BASE and sub[1][0] not in ("string", "wstring"):
            return np.zeros(size if kind == Nodetype.ARRAY else 0, dtype=_NUMPY[sub[1][0]])
        return [default(sub) for _ in range(size)] if kind == Nodetype.ARRAY else []

    fields = store.fielddefs[typename][1]
    values = {**_MSG_DEFAULTS.get(typename, {}), **values}
    args = {name: values[name] if name in values else default(desc) for name, desc in fields}
    unknown = set(values) - set(args)
    if unknown:
        raise ValueError(f"{typename} has no field(s) {sorted(unknown)}")
    return store.types[typename](**args)


#: Defaults that ``.msg`` files declare (rosbags' type definitions do not carry them).
_MSG_DEFAULTS: dict[str, dict[str, Any]] = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}

_NUMPY = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def markers_msg(boxes: Boxes, header: Any, store: Any) -> Any:
    """The detector node's RViz markers of ``boxes`` (:func:`imkd_ros.pipeline.assemble.marker_specs`, after a
    ``DELETEALL``) as a rosbags ``visualization_msgs/MarkerArray``."""
    from imkd_ros.pipeline.assemble import marker_specs

    def vec(typename: str, xyz: Sequence[float]) -> Any:
        return new_msg(store, typename, x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))

    markers = [new_msg(store, "visualization_msgs/msg/Marker", header=header, action=3)]  # DELETEALL
    for s in marker_specs(boxes):
        pose = new_msg(
            store,
            "geometry_msgs/msg/Pose",
            position=vec("geometry_msgs/msg/Point", s.position),
            orientation=new_msg(store, "geometry_msgs/msg/Quaternion"),
        )
        r, g, b, a = (float(v) for v in s.color)
        markers.append(
            new_msg(
                store,
                "visualization_msgs/msg/Marker",
                header=header,
                ns=s.ns,
                id=s.id,
                type=s.type,
                pose=pose,
                scale=vec("geometry_msgs/msg/Vector3", s.scale),
                color=new_msg(store, "std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a),
                points=[vec("geometry_msgs/msg/Point", p) for p in s.points],
                text=s.text,
            )
        )
    return new_msg(store, "visualization_msgs/msg/MarkerArray", markers=markers)


def write_output_bag(path: str | Path, detections: Mapping[int, Boxes], frame_id: str = "base_link") -> Path:
    """An MCAP bag at ``path`` (replaced if it exists) with the detections (``stamp ns -> Boxes`` in ``frame_id``)
    on :data:`OBJECTS_TOPIC` and :data:`DETECTED_OBJECTS_TOPIC` (with the velocities) and their markers on
    :data:`MARKERS_TOPIC`, log time = header stamp."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from imkd_ros.bag.convert import default_typestore, detections_msg, make_header, objects_msg

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    store = default_typestore()
    types = {
        OBJECTS_TOPIC: "vision_msgs/msg/Detection3DArray",
        DETECTED_OBJECTS_TOPIC: "autoware_perception_msgs/msg/DetectedObjects",
        MARKERS_TOPIC: "visualization_msgs/msg/MarkerArray",
    }
    # written beside `path` and renamed when complete: a killed run leaves no half bag under its name
    with atomic_dir(path) as inner, Writer(inner, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in types.items()}
        for stamp in sorted(detections):
            header = make_header(stamp, frame_id, store)
            boxes = detections[stamp]
            for topic, msg in (
                (OBJECTS_TOPIC, detections_msg(boxes, header, store)),
                (DETECTED_OBJECTS_TOPIC, objects_msg(boxes, header, store)),
                (MARKERS_TOPIC, markers_msg(boxes, header, store)),
            ):
                writer.write(conns[topic], stamp, store.serialize_cdr(msg, types[topic]))
    return path


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """``p50``, ``p90``, ``p99``, ``max`` and ``mean`` of ``values`` (NaN when empty)."""
    if not len(values):
        return dict.fromkeys(("p50", "p90", "p99", "max", "mean"), float("nan"))
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def write_bev(out_dir: Path, replay: Any, gt: Mapping[int, Boxes], count: int) -> tuple[list[Path], Path | None]:
    """BEV PNGs of ``count`` evenly spread ground-truth frames of ``replay`` under ``out_dir/bev`` and a GIF of
    them, ``out_dir/bev.gif``. Returns (PNGs, GIF or None)."""
    from PIL import Image

    from imkd_ros.core.transforms import Pose
    from imkd_ros.evaluation.viz import draw_bev

    bev = out_dir / "bev"
    if bev.exists():
        shutil.rmtree(bev)
    frames = [f for f in replay.frames if f.stamp_ns in gt]
    if count <= 0 or not frames:
        return [], None
    step = max(1, len(frames) // count)
    pngs = []
    for i, rec in enumerate(frames[::step][:count]):
        radar = rec.radar if rec.radar is not None else np.zeros((0, 7), np.float32)
        frame = Frame(rec.key, rec.stamp_ns // 1000, "", None, (), radar, None, Pose.identity(), gt[rec.stamp_ns])
        dets = rec.detections if rec.detections is not None else Boxes.empty()
        state = "" if rec.detections is not None else " (no detections: dropped or missed)"
        title = f"{rec.key[:12]} t={rec.stamp_ns / 1e9:.2f} s: {len(dets)} detections{state}"
        pngs.append(draw_bev(bev / f"{i:04d}_{rec.key[:12]}.png", frame, dets, title=title))
    images: list[Any] = []
    for p in pngs:  # tight bounding boxes differ by a few pixels: all frames take the first one's size
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        images.append(rgb if not images or rgb.size == images[0].size else rgb.resize(images[0].size))
    gif = out_dir / "bev.gif"
    images[0].save(gif, save_all=True, append_images=images[1:], duration=_GIF_MS, loop=0)
    return pngs, gif


def _headline(summary: Mapping[str, Any]) -> dict[str, float]:
    from imkd_ros.evaluation.eval_detector import headline

    return headline(summary)


def write_report(
    out_dir: str | Path,
    src: Any,
    replay: Any,
    summary: Mapping[str, Any],
    gt: Mapping[int, Boxes],
    *,
    checkpoint: str,
    device: str,
    rate: float | None,
    bev_frames: int = 40,
    coverage_summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write everything listed in the module docstring (the metrics files are already there) and return the
    report dict written to ``report.json``. ``summary`` is the devkit summary of the model's grid,
    ``coverage_summary`` (optional) that of its coverage region (``coverage/metrics_summary.json``)."""
    out_dir = Path(out_dir)
    frames = replay.frames
    keyframes = [f for f in frames if f.stamp_ns in gt]
    detected = [f for f in frames if f.detections is not None]
    missing = sorted(set(gt) - {f.stamp_ns for f in detected})
    latency = [f.latency_ms for f in detected if f.latency_ms is not None]
    processing = [f.processing_ms for f in detected if f.processing_ms is not None]
    bag_out = write_output_bag(out_dir / "detections", replay.detections)
    pngs, gif = write_bev(out_dir, replay, gt, bev_frames)
    wall = replay.wall_s
    report: dict[str, Any] = {
        "bag": str(src.path),
        "checkpoint": checkpoint,
        "mode": replay.mode,
        "rate": rate,
        "device": device,
        "metrics": _headline(summary),
        "eval_scope": summary.get("eval_scope", {}),
        "coverage_metrics": None if coverage_summary is None else _headline(coverage_summary),
        "coverage_eval_scope": None if coverage_summary is None else coverage_summary.get("eval_scope", {}),
        "frames": {
            "fed": len(frames),
            "detected": len(detected),
            "evaluated": len(gt),
            "keyframes_fed": len(keyframes),
            "keyframes_without_detections": len(missing),
            "missing_stamps": missing[:50],
        },
        "sync": {
            "frame_drops": dict(replay.frame_drops),
            "radar_drops": dict(replay.radar_drops),
            "frames_key_sweep_differs_from_nuscenes": replay.extra.get("frames_key_sweep_differs_from_nuscenes"),
        },
        "input_errors": dict(replay.input_errors),
        "examples": list(replay.examples),
        "latency_ms": percentiles(latency),
        "processing_ms": percentiles(processing),
        "throughput": {
            "wall_s": wall,
            "bag_s": replay.data_s,
            "frames_per_s": len(detected) / wall if wall > 0 else float("nan"),
            "x_realtime": replay.data_s / wall if wall > 0 else float("nan"),
        },
        "live": replay.extra.get("live", {}),
        "per_frame": [_frame_row(f) for f in frames],
        "outputs": {
            "metrics_summary": str(out_dir / "metrics_summary.json"),
            "coverage_metrics_summary": None
            if coverage_summary is None
            else str(out_dir / "coverage" / "metrics_summary.json"),
            "bev_pngs": [str(p) for p in pngs],
            "gif": None if gif is None else str(gif),
            "bag": str(bag_out),
        },
    }
    atomic_write_text(out_dir / "report.md", _markdown(report))
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    return report


def _frame_row(f: Any) -> dict[str, Any]:
    """A replayed frame's row of ``report.json``'s ``per_frame``."""
    return {
        "stamp_ns": f.stamp_ns,
        "key": f.key,
        "keyframe": f.keyframe,
        "detections": None if f.detections is None else len(f.detections),
        "latency_ms": f.latency_ms,
        "processing_ms": f.processing_ms,
        "key_sweep_offset_ms": f.key_sweep_offset_ms,
        "nuscenes_key_differs": f.nuscenes_key_differs,
    }


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _markdown(r: Mapping[str, Any]) -> str:
    m, f, t, lat, pro = r["metrics"], r["frames"], r["throughput"], r["latency_ms"], r["processing_ms"]
    mode = (
        "offline (the node's sync and frame assembly, no ROS)"
        if r["mode"] == "offline"
        else (f"live (bag played at {r['rate']:g}x into ROS 2, detector_node in another process)")
    )
    lines = [
        "# Bag replay evaluation",
        "",
        f"- bag: `{r['bag']}`",
        f"- checkpoint: `{r['checkpoint']}` on {r['device']}",
        f"- mode: {mode}",
        "",
        "## Detection metrics (nuScenes devkit, detection_cvpr_2019)",
        "",
        "| region | NDS | mAP | mATE | mASE | mAOE | mAVE | mAAE | GT boxes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    regions = [("coverage", r.get("coverage_metrics"), r.get("coverage_eval_scope")), ("grid", m, r["eval_scope"])]
    for name, h, scope in regions:
        if h is not None:
            cells = [_fmt(h[k]) for k in ("nds", "map", "trans_err", "scale_err", "orient_err", "vel_err", "attr_err")]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {(scope or {}).get('gt_boxes', '?')} |")
    lines += [
        "",
        "grid: the model's whole BEV grid; coverage: the part of it the model's sensors see (fields of view from "
        "the bag's camera_info and tf_static), the fair region for a camera + radar model.",
        "",
        f"Scope: {json.dumps(r['eval_scope'])}",
        "",
        "## Frames",
        "",
        f"- camera frames fed: {f['fed']} ({f['keyframes_fed']} with ground truth); detections for {f['detected']}",
        f"- frames evaluated (ground truth): {f['evaluated']}; without detections: {f['keyframes_without_detections']}",
    ]
    drops = r["sync"]["frame_drops"]
    lines.append(
        "- camera frames dropped by sync: "
        + (", ".join(f"{k} {v}" for k, v in sorted(drops.items())) if drops else "none")
    )
    rdrops = r["sync"]["radar_drops"]
    lines.append("- radar sweeps dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(rdrops.items())) or "none"))
    errs = r["input_errors"]
    lines.append("- messages rejected: " + (", ".join(f"{k} {v}" for k, v in sorted(errs.items())) or "none"))
    if r["live"]:
        lv = r["live"]
        lines += [
            f"- live: {lv.get('frames_published')} frames published, {lv.get('frames_answered')} answered, "
            f"{lv.get('frames_missed')} missed by the node at {r['rate']:g}x ({lv.get('missed_by_sync')} of them "
            f"dropped by its sync, {lv.get('missed_under_load')} lost under load: a newer frame replaced them while "
            "the model was busy)",
        ]
    if r["examples"]:
        lines += ["", "Examples:", ""] + [f"- {e}" for e in r["examples"][:10]]
    lines += [
        "",
        "## Timing",
        "",
        "| ms | p50 | p90 | p99 | max |",
        "| --- | --- | --- | --- | --- |",
        "| latency | " + " | ".join(_fmt(lat[k]) for k in ("p50", "p90", "p99", "max")) + " |",
        "| processing | " + " | ".join(_fmt(pro[k]) for k in ("p50", "p90", "p99", "max")) + " |",
        "",
        f"Throughput: {_fmt(t['frames_per_s'])} frames/s, {_fmt(t['x_realtime'])}x real time "
        f"({_fmt(t['bag_s'])} s of bag in {_fmt(t['wall_s'])} s).",
        "",
        "## Outputs",
        "",
        f"- devkit summary: `{r['outputs']['metrics_summary']}`",
        f"- BEV: {len(r['outputs']['bev_pngs'])} PNGs under `bev/`, animation `{r['outputs']['gif']}`",
        f"- detections and markers (MCAP, RViz/Foxglove): `{r['outputs']['bag']}`",
        "",
    ]
    return "\n".join(lines)
