"""Label-scarce splits of a labelled dataset: a few drives labelled, the rest used as if unlabelled.

The distillation study (README, Distillation) asks what a LiDAR teacher adds when only a fraction of the recorded
drives is annotated. :func:`add_label_scarce_splits` divides a labelled split (``synth_train``) into two new splits
in ``<dataroot>/<version>/splits.json``:

* ``scarce<P>_labelled``: the first ``round(P % x n_w)`` scenes (at least one) of each weather ``w``, in the split's
  order, so that every weather stays represented;
* ``scarce<P>_unlabelled``: the others.

Nothing is deleted: the annotations of the "unlabelled" scenes stay on disk so that the oracle row (those drives
labelled too) trains on the very same frames. The training code never reads the annotations of frames listed under
``--unlabelled-split`` (:mod:`imkd_ros.distill.pseudo`), and a teacher for this setting is trained with
``--train-split scarce<P>_labelled``. The file is rewritten atomically; the other splits are kept as they were.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from os import PathLike
from pathlib import Path

from imkd_ros.data.errors import DatasetError
from imkd_ros.data.reader import weather_of_description

__all__ = ["label_scarce_split_names", "add_label_scarce_splits"]


def label_scarce_split_names(fraction: float) -> tuple[str, str]:
    """``("scarce25_labelled", "scarce25_unlabelled")`` for ``fraction`` 0.25."""
    pct = round(100 * float(fraction))
    return f"scarce{pct}_labelled", f"scarce{pct}_unlabelled"


def add_label_scarce_splits(
    dataroot: str | PathLike[str], fraction: float, *, source: str = "synth_train", version: str = "v1.0-synth"
) -> dict[str, list[str]]:
    """Write the two label-scarce splits of ``source`` into ``splits.json`` (see the module docstring) and return
    them (name -> scene names).

    Raises:
        DatasetError: no splits.json / scene table, ``source`` unknown or empty, or ``fraction`` not in (0, 1).
    """
    if not 0.0 < float(fraction) < 1.0:
        raise DatasetError(f"the labelled fraction must be in (0, 1), got {fraction!r}")
    folder = Path(dataroot) / version
    splits_file, scene_file = folder / "splits.json", folder / "scene.json"
    for f in (splits_file, scene_file):
        if not f.is_file():
            raise DatasetError(f"{f}: missing (label-scarce splits need a dataset written by `imkd synth`)")
    try:
        splits = json.loads(splits_file.read_text(encoding="utf-8"))
        scenes = json.loads(scene_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DatasetError(f"{folder}: unreadable splits.json or scene.json ({exc})") from exc
    names = list(splits.get(source, []))
    if not names:
        raise DatasetError(f"{splits_file}: split {source!r} is missing or empty; known: {sorted(splits)}")
    weather = {s["name"]: weather_of_description(s.get("description", "")) for s in scenes}
    unknown = [n for n in names if n not in weather]
    if unknown:
        raise DatasetError(f"{scene_file}: scenes of split {source!r} not in the scene table: {unknown[:5]}")
    by_weather: dict[str, list[str]] = defaultdict(list)
    for n in names:
        by_weather[weather[n]].append(n)
    chosen = set()
    for group in by_weather.values():
        chosen.update(group[: max(1, round(float(fraction) * len(group)))])
    lab_name, unl_name = label_scarce_split_names(fraction)
    new = {lab_name: [n for n in names if n in chosen], unl_name: [n for n in names if n not in chosen]}
    splits.update(new)
    tmp = splits_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(splits, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, splits_file)
    return new
