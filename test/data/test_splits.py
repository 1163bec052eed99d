"""Label-scarce splits: weather-balanced, disjoint, covering the source split, other splits untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imkd_ros.data.errors import DatasetError
from imkd_ros.data.splits import add_label_scarce_splits, label_scarce_split_names


def _dataset(root: Path, weathers: list[str]) -> Path:
    folder = root / "v1.0-synth"
    folder.mkdir(parents=True)
    names = [f"scene-{i:04d}" for i in range(len(weathers))]
    pairs = zip(names, weathers, strict=True)
    scenes = [{"token": n, "name": n, "description": f"synthetic, weather={w}"} for n, w in pairs]
    (folder / "scene.json").write_text(json.dumps(scenes))
    (folder / "splits.json").write_text(json.dumps({"synth_train": names[:-1], "synth_val": names[-1:]}))
    return folder


def test_quarter_of_each_weather_is_labelled(tmp_path: Path) -> None:
    weathers = ["clear", "rain", "fog", "night"] * 4 + ["clear"]  # 16 train scenes (4 per weather) + 1 val
    folder = _dataset(tmp_path, weathers)
    new = add_label_scarce_splits(tmp_path, 0.25)
    lab, unl = label_scarce_split_names(0.25)
    assert (lab, unl) == ("scarce25_labelled", "scarce25_unlabelled")
    assert sorted(new) == [lab, unl]
    train = [f"scene-{i:04d}" for i in range(16)]
    assert new[lab] == ["scene-0000", "scene-0001", "scene-0002", "scene-0003"]  # the first of each weather
    assert set(new[lab]).isdisjoint(new[unl]) and sorted(new[lab] + new[unl]) == train
    written = json.loads((folder / "splits.json").read_text())
    assert written["synth_train"] == train and written["synth_val"] == ["scene-0016"]
    assert written[lab] == new[lab] and written[unl] == new[unl]


def test_every_weather_keeps_a_labelled_scene(tmp_path: Path) -> None:
    _dataset(tmp_path, ["clear"] * 8 + ["fog", "night"])  # fog has one train scene, night is validation
    new = add_label_scarce_splits(tmp_path, 0.25)
    assert new["scarce25_labelled"] == ["scene-0000", "scene-0001", "scene-0008"]


def test_reader_serves_the_new_splits(synth_root: Path, tmp_path: Path) -> None:
    import shutil

    from imkd_ros.data.reader import NuScenesReader

    root = tmp_path / "ds"
    shutil.copytree(synth_root, root, symlinks=True)
    new = add_label_scarce_splits(root, 0.5)
    reader = NuScenesReader(root, load_lidar=False)
    assert reader.split_scenes("scarce50_labelled") == new["scarce50_labelled"]
    assert reader.split_scenes("scarce50_unlabelled") == new["scarce50_unlabelled"]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction_is_refused(tmp_path: Path, fraction: float) -> None:
    _dataset(tmp_path, ["clear"] * 4)
    with pytest.raises(DatasetError, match="fraction"):
        add_label_scarce_splits(tmp_path, fraction)


def test_unknown_source_split_names_the_file(tmp_path: Path) -> None:
    _dataset(tmp_path, ["clear"] * 4)
    with pytest.raises(DatasetError, match="splits.json.*synth_nope"):
        add_label_scarce_splits(tmp_path, 0.25, source="synth_nope")
