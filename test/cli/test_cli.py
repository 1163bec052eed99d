"""The `imkd` command line: every verb has --help, user errors exit 2 with one line naming what and where, and
`imkd synth` writes a dataset that the reader loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from imkd_ros.cli import build_parser, main
from imkd_ros.data.reader import NuScenesReader


def verbs() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return sorted(sub.choices)


@pytest.mark.parametrize("verb", verbs())
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage: imkd " + verb in capsys.readouterr().out


def test_synth_writes_a_readable_dataset_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    args = [
        "synth",
        "--out",
        str(out),
        "--scenes",
        "2",
        "--samples-per-scene",
        "1",
        "--seed",
        "5",
        "--weather",
        "fog",
        "--no-camera-sweeps",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    reader = NuScenesReader(out)
    assert len(reader.sample_tokens) == 2 and reader.weather_of_scene("scene-0000") == "fog"
    before = sorted(p.name for p in (out / "v1.0-synth").iterdir())
    capsys.readouterr()
    assert main(args) == 2  # the folder is not empty: refused, nothing lost
    err = capsys.readouterr().err.strip()
    assert err.startswith("imkd synth: error:") and str(out) in err and "\n" not in err
    assert sorted(p.name for p in (out / "v1.0-synth").iterdir()) == before


def test_user_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), "--weather", "snow"]) == 2
    assert "snow" in capsys.readouterr().err
    assert main(["eval-results", "--data", str(tmp_path / "nowhere"), "--results", "r.json", "--out", "m.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imkd eval-results: error:") and "r.json" in err  # names the missing file
    assert main(["bench", "--only", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    # train and ablate: their bad arguments are InputErrors now (no verb turns a plain ValueError into one line)
    data = ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")]
    assert main(["train", "teacher", *data, "--variant", "fusion"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "imkd train: error: --variant applies to students; the teacher is LiDAR only"
    study = ["--data", str(tmp_path), "--val-data", str(tmp_path), "--out", str(tmp_path / "s"), "--rows", "nokd,kd9"]
    assert main(["ablate", *study]) == 2
    assert "imkd ablate: error: unknown study row 'kd9'" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_bad_input_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the project's own errors (ImkdError, InputError among them) become one line: a ValueError from a bug
    propagates with its traceback."""
    import imkd_ros.apps.bench
    from imkd_ros.core.errors import InputError

    def bug(only: object = None, repeats: int = 3) -> dict[str, float]:
        raise ValueError("an internal bug")

    monkeypatch.setattr(imkd_ros.apps.bench, "run_benchmarks", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["bench", "--only", "synth"])

    def bad_input(only: object = None, repeats: int = 3) -> dict[str, float]:
        raise InputError("--only: no such benchmark")

    monkeypatch.setattr(imkd_ros.apps.bench, "run_benchmarks", bad_input)
    assert main(["bench", "--only", "synth"]) == 2
    assert capsys.readouterr().err.strip() == "imkd bench: error: --only: no such benchmark"
