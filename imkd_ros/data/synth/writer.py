"""Write the synthetic world as a nuScenes-format dataset: sensor files, the 13 JSON tables, map and splits.

Layout under ``out`` (exactly nuScenes')::

    samples/CAM_FRONT/<log>__CAM_FRONT__<timestamp>.jpg        keyframes (JPEG, quality 90)
    samples/RADAR_FRONT/<log>__RADAR_FRONT__<timestamp>.pcd    (PCD v0.7 binary, radar frame)
    samples/LIDAR_TOP/<log>__LIDAR_TOP__<timestamp>.pcd.bin    (N x 5 float32, LiDAR frame)
    sweeps/<channel>/...                                       the sweeps between keyframes, same naming
    maps/<token>.png                                           drivable-area mask (:mod:`.maps`)
    <version>/{category,attribute,...,map}.json, splits.json   the 13 tables; splits (:func:`split_scenes`)

Timing (:mod:`.schedule`): samples at 2 Hz on the LiDAR keyframes; camera 12 Hz (keyframe 8 ms after the LiDAR's),
radar 13 Hz (keyframe = nearest sweep), LiDAR 20 Hz; every keyframe has a full interval of earlier sweeps. Each
``sample_data`` has its own ``ego_pose`` at its own timestamp; one ``calibrated_sensor`` per sensor and scene; one
``log`` per scene (its ``logfile`` prefixes the file names); one ``map`` for all logs.

Annotations: at each sample (the LiDAR keyframe time) every actor of the world gets a ``sample_annotation`` if at
least one point of the keyframe LIDAR_TOP or RADAR_FRONT ``sample_data`` lies in its box, counted exactly as the
devkit counts them (:func:`imkd_ros.data.synth.jobs.count_points_in_boxes`). The devkit's detection evaluation drops
boxes without any such point, so nothing it would keep is left out; actors hidden from both sensors (occluded, out of
range, lost in fog) are not annotated. ``visibility_token`` bins the LiDAR's visible fraction of the actor
(``LidarSweep.visibility``) into nuScenes' 0-40/40-60/60-80/80-100 % levels; the attribute is the world's (none for
barriers and cones).

Unlabelled scenes (``unlabelled_scenes=K``, ``imkd synth --unlabelled-scenes K``): the last K scenes that are not
validation scenes are written with every sensor file, ``sample_data`` and ``ego_pose`` but without annotations: no
``sample_annotation`` refers to their samples and ``instance`` lists only the actors of labelled scenes. Their
description carries the tag ``labels=none`` (:data:`imkd_ros.data.reader.UNLABELLED_TAG`), and ``splits.json``
lists them under ``synth_unlabelled`` only. Their files and tokens are those of the same scene written labelled, and
the validation scenes are those of the fully labelled dataset of the same arguments, so a label-scarce dataset
differs from the fully labelled one only in which annotations exist.

Determinism: every sensor call gets ``np.random.default_rng([scene seed, crc32(channel), sweep index])``, jobs are
whole keyframe intervals computed independently (in worker processes or in this one), tokens are md5 hashes of the
generating arguments and record names, and tables are assembled in a fixed order. The same arguments give
bit-identical files whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

import numpy as np

from imkd_ros.core.classes import CATEGORY_OF_CLASS, CLASSES
from imkd_ros.core.errors import InputError
from imkd_ros.data.errors import DatasetError
from imkd_ros.data.reader import UNLABELLED_TAG
from imkd_ros.data.synth.jobs import IntervalJob, JobResult, SceneSpec, run_jobs, scenario_of, schedule_of
from imkd_ros.data.synth.maps import render_map_png
from imkd_ros.data.synth.rig import SynthRig, rig_named
from imkd_ros.data.synth.tables import (
    TABLE_NAMES,
    attribute_table,
    calibrated_sensor_record,
    category_table,
    make_token,
    sensor_table,
    visibility_table,
)
from imkd_ros.data.synth.world import WEATHERS, Scenario

__all__ = ["SynthSummary", "write_dataset", "split_scenes", "devkit_scene_names", "DEVKIT_SCENE_NAMES"]

_WEATHER_WORDS = {
    "clear": "Day, clear, dry road",
    "rain": "Rain, wet road, reduced visibility",
    "fog": "Fog, low visibility",
    "night": "Night, dark, headlights",
}
_LOCATION = "synth-town"


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_dataset` wrote.

    Attributes:
        root: the dataroot (``out``).
        version: table folder name, e.g. ``"v1.0-synth"``.
        scenes: scene names in order.
        weathers: weather tag of each scene.
        train_scenes, val_scenes, unlabelled_scenes: the ``synth_train`` / ``synth_val`` / ``synth_unlabelled``
            splits of ``splits.json``.
        samples: number of samples (keyframes).
        sample_data: number of ``sample_data`` records per channel (keyframes and sweeps).
        annotations: number of ``sample_annotation`` records.
        instances: number of ``instance`` records.
        seconds: wall-clock time of the write.
    """

    root: Path
    version: str
    scenes: list[str]
    weathers: list[str]
    train_scenes: list[str]
    val_scenes: list[str]
    unlabelled_scenes: list[str]
    samples: int
    sample_data: dict[str, int]
    annotations: int
    instances: int
    seconds: float = field(compare=False)


# ---------------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------------


#: Scene-name sets of the devkit (``imkd synth --scene-names``): name -> the ``nuscenes.utils.splits`` lists whose
#: scenes it names, in order.
DEVKIT_SCENE_NAMES: dict[str, tuple[str, ...]] = {"mini": ("mini_train", "mini_val")}


def split_scenes(names: Sequence[str], unlabelled: int = 0) -> dict[str, list[str]]:
    """``{"synth_train": [...], "synth_val": [...], "synth_all": [...], "synth_unlabelled": [...]}``: one scene in
    every 4 is validation, at a position that moves back by one every 4 scenes (index ``i`` with
    ``i % 4 == 3 - (i // 4) % 4``: 3, 6, 9, 12, 19, 22, ...), so that with the weathers cycled over scenes every
    weather has validation scenes. With 2 or 3 scenes the last one is validation; a single scene is training only.
    Of the other scenes the last ``unlabelled`` are ``synth_unlabelled`` (written without annotations), the rest
    ``synth_train``; validation does not depend on ``unlabelled``. ``synth_all`` lists every scene (a dataset written
    only for validation is scored on it).

    Raises:
        ValueError: ``unlabelled`` is negative or more than the non-validation scenes.
    """
    val = [n for i, n in enumerate(names) if i % 4 == 3 - (i // 4) % 4]
    if not val and len(names) >= 2:
        val = [names[-1]]
    pool = [n for n in names if n not in val]
    if isinstance(unlabelled, bool) or not isinstance(unlabelled, int | np.integer) or not 0 <= unlabelled <= len(pool):
        raise InputError(
            f"unlabelled scenes must be an integer in 0..{len(pool)} (the {len(names)} scenes less the {len(val)} "
            f"validation scenes), got {unlabelled!r}"
        )
    cut = len(pool) - int(unlabelled)
    return {"synth_train": pool[:cut], "synth_val": val, "synth_all": list(names), "synth_unlabelled": pool[cut:]}


def _link(records: list[dict]) -> None:
    """Set ``prev`` / ``next`` along a list of records in chain order."""
    for a, b in zip(records[:-1], records[1:], strict=True):
        a["next"], b["prev"] = b["token"], a["token"]


def _scene_tables(
    spec: SceneSpec, scn: Scenario, results: list[JobResult], tables: dict[str, list[dict]], labelled: bool = True
) -> None:
    """Append one scene's records (log, scene, samples, sample_data, ego poses, calibrated sensors, and when
    ``labelled`` its instances and annotations) to ``tables``."""
    key = spec.key
    log_token = make_token("log", key)
    scene_token = make_token("scene", key)
    sched = schedule_of(spec)
    sample_tokens = [make_token("sample", key, k) for k in range(spec.samples)]
    date = datetime.fromtimestamp(scn.start_us / 1e6, tz=UTC).strftime("%Y-%m-%d")
    tables["log"].append(
        {
            "token": log_token,
            "logfile": spec.logfile,
            "vehicle": "synth-ego",
            "date_captured": date,
            "location": _LOCATION,
        }
    )
    samples = [
        {
            "token": sample_tokens[k],
            "timestamp": scn.start_us + int(sched.sample_offsets_us[k]),
            "prev": "",
            "next": "",
            "scene_token": scene_token,
        }
        for k in range(spec.samples)
    ]
    _link(samples)
    tables["sample"].extend(samples)
    n_actors = len(scn.tracks)
    tables["scene"].append(
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": spec.samples,
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": scn.name,
            "description": f"{_WEATHER_WORDS[spec.weather]}, weather={spec.weather}, ego {scn.ego_speed:.1f} m/s, "
            f"{n_actors} actors, synthetic seed {spec.seed}" + ("" if labelled else f", {UNLABELLED_TAG}"),
        }
    )
    _sensor_records(key, spec.sensors, results, sample_tokens, tables)
    if labelled:
        _annotation_records(key, results, sample_tokens, tables)


def _sensor_records(
    key: str, rig: SynthRig, results: list[JobResult], sample_tokens: list[str], tables: dict[str, list[dict]]
) -> None:
    """One scene's calibrated sensors, ego poses and sample_data chains (one per channel) appended to ``tables``."""
    for channel, calib in rig.calibrations.items():
        cs_token = make_token("calibrated_sensor", key, channel)
        tables["calibrated_sensor"].append(calibrated_sensor_record(cs_token, calib))
        chain = []
        for k, res in enumerate(results):
            for rec in res.sweeps:
                if rec.channel != channel:
                    continue
                sd_token = make_token("sample_data", key, channel, rec.timestamp)
                ep_token = make_token("ego_pose", key, channel, rec.timestamp)
                tables["ego_pose"].append({"token": ep_token, "timestamp": rec.timestamp, **rec.ego})
                cam = calib.image_size if channel.startswith("CAM") else None
                chain.append(
                    {
                        "token": sd_token,
                        "sample_token": sample_tokens[k],
                        "ego_pose_token": ep_token,
                        "calibrated_sensor_token": cs_token,
                        "timestamp": rec.timestamp,
                        "fileformat": "jpg" if channel.startswith("CAM") else "pcd",
                        "is_key_frame": rec.is_key_frame,
                        "height": cam[1] if cam else 0,
                        "width": cam[0] if cam else 0,
                        "filename": rec.filename,
                        "prev": "",
                        "next": "",
                    }
                )
        _link(chain)
        tables["sample_data"].extend(chain)


def _annotation_records(
    key: str, results: list[JobResult], sample_tokens: list[str], tables: dict[str, list[dict]]
) -> None:
    """One scene's annotations (linked per instance) and instances appended to ``tables``."""
    ordered: list[dict] = []
    by_instance: dict[str, list[dict]] = {}
    labels: dict[str, int] = {}
    for k, res in enumerate(results):
        for a in res.annotations:
            rec = {
                "token": make_token("sample_annotation", key, a.instance, k),
                "sample_token": sample_tokens[k],
                "instance_token": make_token("instance", key, a.instance),
                "visibility_token": a.visibility,
                "attribute_tokens": [] if a.attribute is None else [make_token("attribute", a.attribute)],
                "translation": a.translation,
                "size": a.size,
                "rotation": a.rotation,
                "prev": "",
                "next": "",
                "num_lidar_pts": a.num_lidar_pts,
                "num_radar_pts": a.num_radar_pts,
            }
            ordered.append(rec)
            by_instance.setdefault(a.instance, []).append(rec)
            labels[a.instance] = a.label
    for records in by_instance.values():
        _link(records)
    tables["sample_annotation"].extend(ordered)
    for inst, records in by_instance.items():
        tables["instance"].append(
            {
                "token": make_token("instance", key, inst),
                "category_token": make_token("category", CATEGORY_OF_CLASS[CLASSES[labels[inst]]]),
                "nbr_annotations": len(records),
                "first_annotation_token": records[0]["token"],
                "last_annotation_token": records[-1]["token"],
            }
        )


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------


def _check_args(
    scenes: int, samples_per_scene: int, seed: int, weathers: Sequence[str], version: str, workers: int | None
) -> tuple[str, ...]:
    for name, value, low in (("scenes", scenes, 1), ("samples_per_scene", samples_per_scene, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise InputError(f"write_dataset: {name} must be an integer >= {low}, got {value!r}")
    if seed >= 2**32:
        raise InputError(f"write_dataset: seed must be < 2**32, got {seed}")
    if isinstance(weathers, str):
        weathers = tuple(w.strip() for w in weathers.split(",") if w.strip())
    weathers = tuple(weathers)
    if not weathers:
        raise InputError("write_dataset: weathers is empty; give at least one of " + ", ".join(WEATHERS))
    bad = [w for w in weathers if w not in WEATHERS]
    if bad:
        raise InputError(f"write_dataset: unknown weather {bad[0]!r}; expected one of {', '.join(WEATHERS)}")
    if not isinstance(version, str) or not version or version in (".", "..") or any(c in version for c in "/\\"):
        raise InputError(f"write_dataset: version must be a plain folder name such as 'v1.0-synth', got {version!r}")
    if version in ("samples", "sweeps", "maps"):
        raise InputError(f"write_dataset: version {version!r} clashes with a data folder of the same name")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"write_dataset: workers must be None or an integer >= 1, got {workers!r}")
    return weathers


def _prepare_root(root: Path, version: str, overwrite: bool) -> None:
    """Refuse a non-empty ``root`` unless ``overwrite``; with it, remove only the previous ``version`` dataset (its
    tables and the files its ``sample_data`` and ``map`` tables name), leaving everything else in place."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"write_dataset: {root} exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DatasetError(
                f"write_dataset: {root} is not empty; refusing to write into it (pass overwrite=True, CLI --overwrite, "
                f"to replace the {version} dataset there)"
            )
        table_dir = root / version
        for table, key in (("sample_data", "filename"), ("map", "filename")):
            path = table_dir / f"{table}.json"
            if not path.is_file():
                continue
            try:
                records = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DatasetError(f"write_dataset: cannot read {path} to overwrite its dataset: {exc}") from exc
            for r in records:
                f = (root / str(r.get(key, ""))).resolve()
                if f.is_file() and f.is_relative_to(root.resolve()):
                    f.unlink()
        if table_dir.is_dir():
            shutil.rmtree(table_dir)
    root.mkdir(parents=True, exist_ok=True)


def _make_folders(root: Path, version: str, camera_sweeps: bool, rig: SynthRig) -> None:
    """The dataroot's folders: ``samples/<channel>``, ``sweeps/<channel>`` (camera ones only with sweeps), ``maps``
    and the table folder."""
    for folder in ("samples", "sweeps"):
        for channel in rig.channels:
            if folder == "sweeps" and channel.startswith("CAM") and not camera_sweeps:
                continue
            (root / folder / channel).mkdir(parents=True, exist_ok=True)
    (root / "maps").mkdir(exist_ok=True)
    (root / version).mkdir(exist_ok=True)


def _dataset_tables(
    root: Path,
    specs: Sequence[SceneSpec],
    scenarios: Sequence[Scenario],
    results: Sequence[JobResult],
    labelled: Sequence[bool],
) -> dict[str, list[dict]]:
    """The 13 tables of the written keyframe intervals ``results`` (scene by scene, in order); the map PNG is
    written into ``root/maps`` on the way."""
    tables: dict[str, list[dict]] = {name: [] for name in TABLE_NAMES}
    tables["category"] = category_table()
    tables["attribute"] = attribute_table()
    tables["visibility"] = visibility_table()
    tables["sensor"] = sensor_table(specs[0].sensors.channels)
    start = 0
    for spec, scn, lab in zip(specs, scenarios, labelled, strict=True):
        _scene_tables(spec, scn, list(results[start : start + spec.samples]), tables, lab)
        start += spec.samples
    map_token = make_token("map", *(s.key for s in specs))
    map_file = f"maps/{map_token}.png"
    (root / map_file).write_bytes(render_map_png(scenarios))
    tables["map"] = [
        {
            "token": map_token,
            "log_tokens": [r["token"] for r in tables["log"]],
            "category": "semantic_prior",
            "filename": map_file,
        }
    ]
    return tables


def write_dataset(
    out: str | PathLike[str],
    scenes: int,
    samples_per_scene: int,
    seed: int,
    weathers: Sequence[str] | str = ("clear",),
    version: str = "v1.0-synth",
    camera_sweeps: bool = True,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    unlabelled_scenes: int = 0,
    rig: str = "front",
    scene_names: Sequence[str] | None = None,
) -> SynthSummary:
    """Generate ``scenes`` scenes of ``samples_per_scene`` keyframes each and write them as a nuScenes dataset.

    Args:
        out: dataroot; created if missing; must be empty unless ``overwrite``.
        scenes: number of scenes (>= 1), named ``scene-0000`` ...
        samples_per_scene: keyframes per scene (>= 1); a scene lasts ``samples_per_scene / 2`` seconds.
        seed: dataset seed (0 <= seed < 2**32); the same arguments give bit-identical output.
        weathers: weather tags (``clear``, ``rain``, ``fog``, ``night``) cycled over the scenes; a comma-separated
            string is accepted too.
        version: name of the table folder (``NuScenes(version=...)``).
        camera_sweeps: write the 12 Hz camera frames between keyframes (False: camera keyframes only, faster).
        workers: worker processes over keyframe intervals (None: ``min(2, os.cpu_count())``; 1: run in this
            process). The output does not depend on it. Workers are started by a ``forkserver`` (safe with threads
            in this process), so a script that calls this with ``workers > 1`` needs the usual
            ``if __name__ == "__main__":`` guard.
        progress: show a tqdm bar over keyframe intervals.
        overwrite: replace the ``version`` dataset already in ``out`` (only its own files are removed).
        unlabelled_scenes: the last this many non-validation scenes are written without annotations
            (``synth_unlabelled``, see the module docstring and :func:`split_scenes`).
        rig: the sensor rig (:data:`imkd_ros.data.synth.rig.RIGS`): ``front`` (one camera, one radar) or
            ``nuscenes`` (six cameras, five radars); both with the LiDAR.
        scene_names: the scenes' names in ``scene.json`` and ``splits.json`` instead of ``scene-0000`` ... (one per
            scene, distinct), e.g. the devkit's ``mini_train + mini_val`` names, so that a dataset written with
            ``version="v1.0-mini"`` answers to the devkit's own split names (:data:`DEVKIT_SCENE_NAMES`). Only
            the names change: files, tokens and contents are those of the default names.

    Returns:
        A :class:`SynthSummary`.

    Raises:
        ValueError: bad arguments (also more unlabelled scenes than non-validation ones).
        DatasetError: ``out`` is not empty (and not ``overwrite``) or unusable.
    """
    t0 = time.perf_counter()
    weathers = _check_args(scenes, samples_per_scene, seed, weathers, version, workers)
    sensors = rig_named(rig)
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    specs = [
        SceneSpec(int(seed), i, weathers[i % len(weathers)], int(samples_per_scene), bool(camera_sweeps), sensors.name)
        for i in range(scenes)
    ]
    scenarios = [scenario_of(s) for s in specs]
    names = [scn.name for scn in scenarios]
    rename = _scene_renames(names, scene_names)
    splits = split_scenes(names, unlabelled_scenes)  # raises on a bad count before anything is written
    labelled = [n not in splits["synth_unlabelled"] for n in names]
    root = Path(out)
    _prepare_root(root, version, overwrite)
    _make_folders(root, version, camera_sweeps, sensors)

    jobs = [
        IntervalJob(str(root), spec, k, annotate=lab)
        for spec, lab in zip(specs, labelled, strict=True)
        for k in range(spec.samples)
    ]
    results = run_jobs(jobs, workers, progress)

    tables = _dataset_tables(root, specs, scenarios, results, labelled)
    names, splits = _write_tables(root / version, tables, names, splits, rename)
    return _summary(root, version, names, specs, splits, tables, time.perf_counter() - t0)


def _write_tables(
    folder: Path, tables: dict[str, list[dict]], names: list[str], splits: dict[str, list[str]], rename: dict[str, str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Write the tables (:data:`TABLE_NAMES`) and ``splits.json`` into the version folder, the scenes renamed by
    ``rename`` (old -> new name; empty: none) in both; returns the scene names and the splits as written."""
    if rename:
        for rec in tables["scene"]:
            rec["name"] = rename[rec["name"]]
        splits = {k: [rename[n] for n in v] for k, v in splits.items()}
        names = [rename[n] for n in names]
    for name in TABLE_NAMES:
        (folder / f"{name}.json").write_text(json.dumps(tables[name], indent=0))
    (folder / "splits.json").write_text(json.dumps(splits, indent=1))
    return names, splits


def devkit_scene_names(split_set: str) -> list[str]:
    """The scene names of a devkit split set (:data:`DEVKIT_SCENE_NAMES`): ``"mini"``: mini_train + mini_val (10).

    Raises:
        InputError: an unknown set.
    """
    if split_set not in DEVKIT_SCENE_NAMES:
        raise InputError(f"unknown scene-name set {split_set!r}: choose from {', '.join(DEVKIT_SCENE_NAMES)}")
    from nuscenes.utils import splits

    return [n for part in DEVKIT_SCENE_NAMES[split_set] for n in getattr(splits, part)]


def _scene_renames(names: Sequence[str], scene_names: Sequence[str] | None) -> dict[str, str]:
    """Default scene name -> given name (empty without ``scene_names``)."""
    if scene_names is None:
        return {}
    given = [str(n) for n in scene_names]
    if len(given) != len(names) or len(set(given)) != len(given) or not all(given):
        raise InputError(f"scene_names: need {len(names)} distinct non-empty names (one per scene), got {len(given)}")
    return dict(zip(names, given, strict=True))


def _summary(
    root: Path,
    version: str,
    names: list[str],
    specs: Sequence[SceneSpec],
    splits: dict[str, list[str]],
    tables: dict[str, list[dict]],
    seconds: float,
) -> SynthSummary:
    counts = {
        ch: sum(1 for r in tables["sample_data"] if r["filename"].split("/")[1] == ch)
        for ch in specs[0].sensors.channels
    }
    return SynthSummary(
        root=root,
        version=version,
        scenes=names,
        weathers=[s.weather for s in specs],
        train_scenes=splits["synth_train"],
        val_scenes=splits["synth_val"],
        unlabelled_scenes=splits["synth_unlabelled"],
        samples=len(tables["sample"]),
        sample_data=counts,
        annotations=len(tables["sample_annotation"]),
        instances=len(tables["instance"]),
        seconds=seconds,
    )
