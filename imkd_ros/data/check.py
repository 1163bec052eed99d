"""Bad input files never cost a run: check what a run will read up front, report every bad file at once, or skip
the frames that read them.

Long runs (``imkd train``, ``imkd eval``, ``imkd teacher-targets``, ``imkd compare``, ``imkd bag export``) call
:func:`usable_samples` (or :func:`read_frames`) before the long part starts:

* every file a frame reads (:meth:`~imkd_ros.data.reader.NuScenesReader.frame_files`) is checked once, cheaply
  (:func:`check_file`: it exists and is not empty; a radar PCD's header parses and its size holds the points it
  announces, :func:`~imkd_ros.data.pcd.check_radar_pcd`; a LiDAR ``.pcd.bin`` is a whole number of points; an
  image's header parses and a JPEG ends with its end-of-image marker, a PNG with its IEND chunk: what a
  truncated copy lacks);
* without ``skip_bad``: one :class:`~imkd_ros.data.errors.BadFilesError` listing the first bad files (path and
  what is wrong) and how many there are, before any model runs;
* with ``skip_bad`` (``--skip-bad-frames``): the frames reading a bad file are left out and returned as
  :class:`SkippedFrame` records, which the run writes into its outputs (``skipped_frames`` in the metrics, the
  checkpoint meta, the cache header, the model card).

Damage the cheap checks cannot see (bytes flipped inside a JPEG's entropy-coded data) surfaces when the frame is
read: :func:`read_frames` then raises that one file's error, or skips the frame with ``skip_bad``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from imkd_ros.core.types import Frame
from imkd_ros.data.errors import BadFilesError, DataError
from imkd_ros.data.pcd import check_lidar_bin, check_radar_pcd

__all__ = [
    "FileProblem",
    "add_skip_bad_frames_argument",
    "SkippedFrame",
    "check_file",
    "check_samples",
    "bad_files_error",
    "usable_samples",
    "read_frames",
    "iter_frames",
    "sort_skipped",
    "SKIP_HINT",
]

#: How a user skips bad frames (appended to :class:`BadFilesError` messages).
SKIP_HINT = "rerun with --skip-bad-frames to skip the frames that read them"
_LISTED = 5  # bad files named in one error message
_TAIL = 64  # bytes read at a file's end for its end marker
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_SIG, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


@dataclass(frozen=True)
class FileProblem:
    """A bad input: ``where`` (a file path, or ``sample <token>`` for a sample that cannot be assembled), what is
    wrong, and the samples that read it."""

    where: str
    reason: str
    samples: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class SkippedFrame:
    """A frame left out of a run (``--skip-bad-frames``): its sample token, scene and the problem."""

    sample: str
    scene: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _check_image(path: Path) -> str | None:
    from PIL import Image

    with open(path, "rb") as f:
        head = f.read(len(_PNG_SIG))
        size = f.seek(0, 2)
        f.seek(max(0, size - _TAIL))
        tail = f.read()
    if head.startswith(_JPEG_SOI):
        if not tail.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI):
            return f"truncated JPEG ({size} bytes, no end-of-image marker)"
    elif head.startswith(_PNG_SIG):
        if not tail.endswith(_PNG_IEND):
            return f"truncated PNG ({size} bytes, no IEND chunk)"
    try:
        with Image.open(path) as im:  # reads the header only
            if im.width < 1 or im.height < 1:
                return f"image of size {im.width}x{im.height}"
    except (OSError, ValueError, SyntaxError) as exc:
        return f"not a readable image ({exc})"
    return None


def check_file(kind: str, path: str | PathLike[str]) -> str | None:
    """What is wrong with one input file, or None: ``kind`` ``"image"``, ``"radar"`` (nuScenes radar PCD) or
    ``"lidar"`` (``.pcd.bin``). Cheap: a few bytes and the size are read (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        return "missing" if not path.exists() else "not a file"
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        if kind == "image":
            return _check_image(path)
        if kind == "radar":
            check_radar_pcd(path)
        elif kind == "lidar":
            check_lidar_bin(path)
        else:
            raise ValueError(f"check_file: unknown kind {kind!r} (image, radar, lidar)")
    except DataError as exc:
        text = str(exc)
        return text[len(str(path)) + 2 :] if text.startswith(f"{path}: ") else text
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def check_samples(reader: Any, tokens: Sequence[str]) -> list[FileProblem]:
    """Check every file the frames of ``tokens`` read (each file once) with :func:`check_file`.

    Args:
        reader: a :class:`~imkd_ros.data.reader.NuScenesReader` (its settings decide which files a frame reads).
        tokens: sample tokens.

    Returns:
        the problems in the order first met (empty: every file looks fine).
    """
    files: dict[Path, tuple[str, list[str]]] = {}
    problems: list[FileProblem] = []
    for t in tokens:
        try:
            for kind, path in reader.frame_files(t):
                files.setdefault(path, (kind, []))[1].append(t)
        except DataError as exc:
            problems.append(FileProblem(f"sample {t}", str(exc), (t,)))
    for path, (kind, samples) in files.items():
        reason = check_file(kind, path)
        if reason is not None:
            problems.append(FileProblem(str(path), reason, tuple(dict.fromkeys(samples))))
    return problems


def bad_files_error(
    problems: Sequence[FileProblem], frames: int, what: str, hint: str = SKIP_HINT, unit: str = "frames"
) -> BadFilesError:
    """One :class:`BadFilesError` for ``problems`` found among the ``frames`` frames (or other ``unit``) of
    ``what`` (e.g. ``"split synth_val of DIR"``): a single line naming the first few bad files, the count, and
    ``hint`` (default :data:`SKIP_HINT`)."""
    hit = {s for p in problems for s in p.samples}
    listed = "; ".join(str(p) for p in problems[:_LISTED])
    more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
    return BadFilesError(
        f"{len(problems)} bad input file{'s' if len(problems) != 1 else ''} in {what} ({len(hit)} of {frames} "
        f"{unit} read them): {listed}{more}; {hint}",
        problems,
    )


def add_skip_bad_frames_argument(p: argparse.ArgumentParser, listed_in: str) -> None:
    """``--skip-bad-frames``: ``skip_bad`` of :func:`usable_samples` for a verb whose run lists what it skipped in
    ``listed_in``."""
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help=f"leave out frames whose files are missing, truncated or corrupt (listed in {listed_in}) instead of "
        "stopping with the list of bad files",
    )


def usable_samples(
    reader: Any, tokens: Sequence[str], *, skip_bad: bool = False, what: str = "the run"
) -> tuple[list[str], list[SkippedFrame]]:
    """The samples of ``tokens`` whose files pass :func:`check_samples`, and the skipped ones.

    Raises:
        BadFilesError: a bad file and not ``skip_bad`` (every bad file is counted, the first few named).
    """
    problems = check_samples(reader, tokens)
    if problems and not skip_bad:
        raise bad_files_error(problems, len(tokens), what)
    first: dict[str, FileProblem] = {}
    for p in problems:
        for s in p.samples:
            first.setdefault(s, p)
    skipped = [SkippedFrame(t, _scene(reader, t), str(first[t])) for t in tokens if t in first]
    return [t for t in tokens if t not in first], skipped


def _scene(reader: Any, token: str) -> str:
    try:
        return str(reader.scene_of(token))
    except (DataError, KeyError):
        return "?"


def read_frames(
    reader: Any,
    tokens: Sequence[str],
    *,
    skip_bad: bool = False,
    what: str = "the run",
    transform: Callable[[Frame], Frame] | None = None,
    progress: Callable[[Sequence[str]], Any] | None = None,
) -> tuple[list[Frame], list[SkippedFrame]]:
    """Check the files of ``tokens`` up front (:func:`usable_samples`), then read the frames (``transform``-ed,
    e.g. shrunk to a model's input, as they are read).

    Args:
        progress: wraps the token list for a progress bar (e.g. ``tqdm``).

    Returns:
        the frames read (in ``tokens`` order) and the frames skipped (empty unless ``skip_bad``).

    Raises:
        BadFilesError: bad files found up front, without ``skip_bad``.
        DataError: a file the cheap checks passed fails to read (e.g. a corrupt JPEG body), without ``skip_bad``.
    """
    good, skipped = usable_samples(reader, tokens, skip_bad=skip_bad, what=what)
    frames = [
        transform(f) if transform is not None else f
        for f in iter_frames(reader, progress(good) if progress is not None else good, skipped, skip_bad=skip_bad)
    ]
    sort_skipped(skipped, tokens)
    return frames, skipped


def sort_skipped(skipped: list[SkippedFrame], tokens: Sequence[str]) -> None:
    """Put ``skipped`` in the order of ``tokens`` (in place): those found up front and those that failed to read."""
    order = {t: i for i, t in enumerate(tokens)}
    skipped.sort(key=lambda s: order.get(s.sample, 0))


def iter_frames(
    reader: Any, tokens: Iterable[str], skipped: list[SkippedFrame], *, skip_bad: bool = False
) -> Iterator[Frame]:
    """The frames of ``tokens`` (files checked already: :func:`usable_samples`), read one at a time as they are
    asked for, so that a caller that does not keep them holds one at a time (a nuScenes val keyframe with six
    full-size images is ~26 MB). With ``skip_bad``, a frame that fails to read is appended to ``skipped`` instead.

    Raises:
        DataError: a file the cheap checks passed fails to read, without ``skip_bad``.
    """
    for t in tokens:
        try:
            frame = reader.frame(t)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(SkippedFrame(t, _scene(reader, t), str(exc)))
            continue
        yield frame
