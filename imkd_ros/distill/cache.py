"""The teacher-target format and its on-disk cache (one module, one version number: :data:`FORMAT_VERSION`).

Per sample (one keyframe), :class:`TeacherTargets`; every map is on the teacher/student head grid
(:class:`TargetGrid`: ``height`` rows along y, ``width`` columns along x, ego frame of the keyframe's camera
timestamp, layout ``(C, H, W)`` row-major):

* ``features`` ``(C, H, W)``: the teacher's BEV network output (``TeacherOutput.bev``).
* ``intensity`` ``(3, H, W)``: ``density``, ``reflectance``, ``activation`` in [0, 1], defined in
  :mod:`imkd_ros.distill.intensity`.
* ``heatmap`` ``(K, H, W)``: teacher class-heatmap probabilities (sigmoid of the logits), classes ``class_names``.
* ``boxes`` ``(N, 9)`` float32 ``[x, y, z, w, l, h, yaw, vx, vy]`` (ego frame, m, rad, m/s), ``labels`` ``(N,)``
  int32 index into :data:`imkd_ros.core.classes.CLASSES`, ``scores`` ``(N,)`` float32: the teacher's decoded detections
  (after its score threshold and circle NMS, at most its ``max_detections``), descending score. Those with a score
  at or above a pseudo-label threshold are the pseudo-labels of unlabelled frames
  (:meth:`TeacherTargets.confident_boxes`, :mod:`imkd_ros.distill.pseudo`); the header's ``boxes`` record says
  which scores the cache kept, so that a threshold below it is refused rather than silently raised.
* identity: ``sample_token``, ``timestamp`` (microseconds).

A cache is a folder:

* ``index.json``: ``format`` (:data:`FORMAT_NAME`), ``format_version``, ``header`` (grid, ``feature_channels``,
  ``intensity_names``, ``class_names``, ``map_dtype`` ``"float16"``, the intensity normalisation, the teacher
  checkpoint and its sha256, the source dataset and split, ``boxes``: the box columns, frame and the teacher's
  decoding limits ``score_threshold`` / ``max_detections``), ``shard_size``, ``shards`` (one entry per planned shard:
  ``file``, ``tokens``, and once written ``sha256`` and ``bytes``), ``samples`` (``sample_token -> [shard,
  offset]`` of the written shards) and ``complete``.
* ``shard_NNNNN.npz`` (uncompressed numpy archive, no pickles): ``tokens`` ``(S,)`` str, ``timestamps`` ``(S,)``
  int64, ``features`` ``(S, C, H, W)``, ``intensity`` ``(S, 3, H, W)``, ``heatmap`` ``(S, K, H, W)`` (float16),
  ``box_offsets`` ``(S + 1,)`` int64 and the concatenated ``boxes`` ``(sum N, 9)`` float32, ``labels`` int32,
  ``scores`` float32.

Maps are stored as float16 (about 0.5 MB per sample at C = 48, 64 x 64); what is read back is bit-identical to what
was written. Shards and the index are written atomically (temporary file + rename), the index after every shard, so
an interrupted build leaves only whole shards, which :class:`TargetCacheWriter` reuses (after checking their
sha256) instead of recomputing. This module needs only numpy: the bag pipelines and ROS nodes share it.

Versions: 1, the first; 2 adds the header's ``boxes`` record (the per-sample content is unchanged). A cache of
another version is refused with a message asking for a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.distill.errors import TargetCacheError
from imkd_ros.distill.intensity import INTENSITY_NAMES

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "MAP_DTYPE",
    "BOX_COLUMNS",
    "TargetGrid",
    "TeacherTargets",
    "CacheHeader",
    "TargetCacheWriter",
    "TargetCache",
    "file_sha256",
]

FORMAT_NAME = "imkd-teacher-targets"
#: Bumped whenever the per-sample content or the file layout changes (also ``TeacherTargets.msg.format_version``).
FORMAT_VERSION = 2
INDEX_NAME = "index.json"
#: Storage dtype of the maps.
MAP_DTYPE = np.float16
#: Columns of ``TeacherTargets.boxes``.
BOX_COLUMNS: tuple[str, ...] = ("x", "y", "z", "w", "l", "h", "yaw", "vx", "vy")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class TargetGrid:
    """The head grid the maps live on (ego frame). Row ``i`` is ``y = y_min + (i + 0.5) * cell``, column ``j`` is
    ``x = x_min + (j + 0.5) * cell``."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    cell: float
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.cell <= 0 or self.height < 1 or self.width < 1:
            raise TargetCacheError(f"TargetGrid: cell {self.cell}, height {self.height}, width {self.width} invalid")
        for lo, hi, n, axis in ((self.x_min, self.x_max, self.width, "x"), (self.y_min, self.y_max, self.height, "y")):
            if abs((hi - lo) - n * self.cell) > 1e-4 * max(1.0, abs(hi - lo)):
                raise TargetCacheError(f"TargetGrid: {axis} span {hi - lo} != {n} cells x {self.cell} m")

    @classmethod
    def from_model_config(cls, config: Any) -> TargetGrid:
        """The head grid of an :class:`imkd_ros.model.ModelConfig`."""
        g = config.grid
        return cls(
            float(g.x_range[0]),
            float(g.x_range[1]),
            float(g.y_range[0]),
            float(g.y_range[1]),
            float(g.out_cell),
            int(g.out_ny),
            int(g.out_nx),
        )

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)``."""
        return self.x_min, self.x_max, self.y_min, self.y_max

    def matches(self, other: TargetGrid, tol: float = 1e-5) -> bool:
        """Same cells (sizes equal, bounds within ``tol`` m)."""
        return (self.height, self.width) == (other.height, other.width) and all(
            abs(a - b) <= tol
            for a, b in zip(
                (self.x_min, self.x_max, self.y_min, self.y_max, self.cell),
                (other.x_min, other.x_max, other.y_min, other.y_max, other.cell),
                strict=True,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetGrid:
        try:
            return cls(
                float(data["x_min"]),
                float(data["x_max"]),
                float(data["y_min"]),
                float(data["y_max"]),
                float(data["cell"]),
                int(data["height"]),
                int(data["width"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TargetCacheError(f"TargetGrid: bad grid record {data!r}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class TeacherTargets:
    """One sample's teacher targets (see the module docstring for the fields and units).

    Maps keep the dtype they were given (float16 when read from a cache, float32 when fresh from the teacher);
    :meth:`as_stored` casts them to :data:`MAP_DTYPE`. Shapes are checked on construction.
    """

    sample_token: str
    timestamp: int
    features: np.ndarray
    intensity: np.ndarray
    heatmap: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        where = f"TeacherTargets({self.sample_token})"
        for name in ("features", "intensity", "heatmap"):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.ndim != 3:
                raise TargetCacheError(f"{where}: {name} must be a (C, H, W) numpy array, got {np.shape(a)}")
        hw = self.features.shape[1:]
        if self.intensity.shape != (len(INTENSITY_NAMES), *hw):
            raise TargetCacheError(f"{where}: intensity must be (3, {hw[0]}, {hw[1]}), got {self.intensity.shape}")
        if self.heatmap.shape[1:] != hw:
            raise TargetCacheError(f"{where}: heatmap must be (K, {hw[0]}, {hw[1]}), got {self.heatmap.shape}")
        n = len(self.boxes)
        if self.boxes.shape != (n, len(BOX_COLUMNS)) or self.labels.shape != (n,) or self.scores.shape != (n,):
            raise TargetCacheError(
                f"{where}: boxes (N, 9), labels (N,), scores (N,) expected, got {self.boxes.shape}, "
                f"{self.labels.shape}, {self.scores.shape}"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(CLASSES)):
            raise TargetCacheError(f"{where}: labels outside 0..{len(CLASSES) - 1}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.features.shape[1:])  # type: ignore[return-value]

    def as_stored(self) -> TeacherTargets:
        """These targets as the cache stores them: maps :data:`MAP_DTYPE`, boxes/scores float32, labels int32.

        Raises:
            TargetCacheError: a map value is not finite in float16 (overflow above 65504, or NaN).
        """
        maps = {}
        for name in ("features", "intensity", "heatmap"):
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by name
                a = np.ascontiguousarray(getattr(self, name), dtype=MAP_DTYPE)
            if not np.isfinite(a).all():
                raise TargetCacheError(f"TeacherTargets({self.sample_token}): {name} is not finite in float16")
            maps[name] = a
        return TeacherTargets(
            self.sample_token,
            int(self.timestamp),
            maps["features"],
            maps["intensity"],
            maps["heatmap"],
            np.ascontiguousarray(self.boxes, dtype=np.float32).reshape(-1, len(BOX_COLUMNS)),
            np.ascontiguousarray(self.labels, dtype=np.int32).reshape(-1),
            np.ascontiguousarray(self.scores, dtype=np.float32).reshape(-1),
        )

    def to_boxes(self) -> Boxes:
        """The teacher's detections as :class:`~imkd_ros.core.types.Boxes` (frame ``"ego"``)."""
        b = self.boxes.astype(np.float64)
        return Boxes(b[:, 0:3], b[:, 3:6], b[:, 6], b[:, 7:9], self.labels.astype(np.int64), self.scores, "ego")

    def confident_boxes(self, threshold: float) -> Boxes:
        """The teacher's detections with ``score >= threshold`` as :class:`~imkd_ros.core.types.Boxes` (frame ``"ego"``,
        the ego frame at :attr:`timestamp`), in stored order (descending score)."""
        return self.to_boxes()[np.asarray(self.scores, dtype=np.float64) >= float(threshold)]


@dataclass(frozen=True)
class CacheHeader:
    """What every sample of a cache shares (``index.json``'s ``header``).

    Attributes:
        grid: the head grid.
        feature_channels: C.
        class_names: the K heatmap classes, in :data:`imkd_ros.core.classes.CLASSES` order.
        intensity_names: :data:`imkd_ros.distill.intensity.INTENSITY_NAMES`.
        intensity_spec: the normalisation (``IntensitySpec.to_dict()``).
        teacher: ``{"checkpoint": path, "sha256": ..., "name": ...}``.
        source: ``{"dataroot": ..., "version": ..., "split": ...}``.
        boxes: ``{"columns": BOX_COLUMNS, "frame": "ego", "score_threshold": s, "max_detections": n}``: the boxes
            hold the teacher's detections with score >= s, at most n per sample (empty: unknown).
    """

    grid: TargetGrid
    feature_channels: int
    class_names: tuple[str, ...]
    intensity_names: tuple[str, ...] = INTENSITY_NAMES
    intensity_spec: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    boxes: dict[str, Any] = field(default_factory=dict)

    @property
    def min_box_score(self) -> float:
        """The lowest score the cache's boxes can have (the teacher's decoding threshold; 0 when unknown)."""
        return float(self.boxes.get("score_threshold", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": self.grid.to_dict(),
            "feature_channels": int(self.feature_channels),
            "class_names": list(self.class_names),
            "intensity_names": list(self.intensity_names),
            "map_dtype": np.dtype(MAP_DTYPE).name,
            "intensity_spec": dict(self.intensity_spec),
            "teacher": dict(self.teacher),
            "source": dict(self.source),
            "boxes": dict(self.boxes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheHeader:
        try:
            if data.get("map_dtype", "float16") != np.dtype(MAP_DTYPE).name:
                raise TargetCacheError(f"cache maps are {data['map_dtype']}, this reader expects float16")
            return cls(
                TargetGrid.from_dict(data["grid"]),
                int(data["feature_channels"]),
                tuple(data["class_names"]),
                tuple(data["intensity_names"]),
                dict(data.get("intensity_spec") or {}),
                dict(data.get("teacher") or {}),
                dict(data.get("source") or {}),
                dict(data.get("boxes") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TargetCacheError(f"cache header is malformed: {exc}") from exc

    def check(self, t: TeacherTargets) -> None:
        """Raise :class:`TargetCacheError` unless ``t``'s shapes fit this header."""
        want = (self.feature_channels, self.grid.height, self.grid.width)
        if t.features.shape != want:
            raise TargetCacheError(f"{t.sample_token}: features {t.features.shape}, the cache holds {want}")
        if t.heatmap.shape[0] != len(self.class_names):
            raise TargetCacheError(
                f"{t.sample_token}: heatmap has {t.heatmap.shape[0]} classes, the cache {len(self.class_names)}"
            )


def _shard_bytes(targets: Sequence[TeacherTargets]) -> bytes:
    import io

    offsets = np.zeros(len(targets) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t.boxes) for t in targets])
    arrays = {
        "tokens": np.array([t.sample_token for t in targets], dtype=np.str_),
        "timestamps": np.array([t.timestamp for t in targets], dtype=np.int64),
        "features": np.stack([t.features for t in targets]),
        "intensity": np.stack([t.intensity for t in targets]),
        "heatmap": np.stack([t.heatmap for t in targets]),
        "box_offsets": offsets,
        "boxes": np.concatenate([t.boxes for t in targets]).reshape(-1, len(BOX_COLUMNS)),
        "labels": np.concatenate([t.labels for t in targets]),
        "scores": np.concatenate([t.scores for t in targets]),
    }
    # np.savez's layout (a zip of .npy members, stored), written by hand with a fixed member date so that the same
    # targets always give the same bytes and checksum (a resumed build equals an uninterrupted one).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def _read_shard(path: Path) -> list[TeacherTargets]:
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except Exception as exc:  # numpy raises several types for a truncated or foreign file
        raise TargetCacheError(f"teacher-target shard {path} is unreadable: {exc}") from exc
    try:
        off = a["box_offsets"]
        return [
            TeacherTargets(
                str(a["tokens"][i]),
                int(a["timestamps"][i]),
                a["features"][i],
                a["intensity"][i],
                a["heatmap"][i],
                a["boxes"][off[i] : off[i + 1]],
                a["labels"][off[i] : off[i + 1]],
                a["scores"][off[i] : off[i + 1]],
            )
            for i in range(len(a["tokens"]))
        ]
    except KeyError as exc:
        raise TargetCacheError(f"teacher-target shard {path} lacks array {exc}") from exc


class TargetCacheWriter:
    """Writes (or resumes writing) a cache of the samples ``plan`` (the tokens of each shard, in order).

    On construction an existing ``index.json`` under ``root`` is read: if its format version, header and plan equal
    these, shards already written whose file still has the recorded sha256 are kept (:attr:`done`); otherwise a
    :class:`TargetCacheError` is raised, unless ``overwrite`` (then the old index is dropped and every shard is
    rewritten). Call :meth:`write_shard` for each index of :meth:`pending`, then :meth:`finish`.

    Args:
        root: the cache folder (created).
        header: what the samples share.
        plan: tokens per shard.
        shard_size: the nominal shard size (recorded).
        overwrite: replace an incompatible cache instead of failing.
    """

    def __init__(
        self,
        root: str | Path,
        header: CacheHeader,
        plan: Sequence[Sequence[str]],
        shard_size: int,
        *,
        overwrite: bool = False,
    ) -> None:
        self.root = Path(root)
        self.header = header
        self.plan = [list(p) for p in plan]
        flat = [t for p in self.plan for t in p]
        if len(set(flat)) != len(flat):
            raise TargetCacheError("the cache plan lists a sample token twice")
        self.root.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "header": header.to_dict(),
            "shard_size": int(shard_size),
            "shards": [{"file": f"shard_{i:05d}.npz", "tokens": p} for i, p in enumerate(self.plan)],
            "samples": {},
            "complete": False,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.done: set[int] = set()
        old_path = self.root / INDEX_NAME
        if old_path.is_file():
            self._resume(old_path, overwrite)

    def _resume(self, old_path: Path, overwrite: bool) -> None:
        try:
            old = json.loads(old_path.read_text())
        except (OSError, ValueError) as exc:
            if not overwrite:
                raise TargetCacheError(f"{old_path} is unreadable ({exc}); pass overwrite to rebuild") from exc
            return
        same = (
            old.get("format") == FORMAT_NAME
            and old.get("format_version") == FORMAT_VERSION
            and old.get("header") == self.index["header"]
            and [s.get("tokens") for s in old.get("shards", [])] == self.plan
        )
        if not same:
            if overwrite:
                return
            raise TargetCacheError(
                f"{self.root} holds a teacher-target cache of another teacher, dataset, grid, shard plan or format "
                "version; choose another output folder or overwrite it (imkd teacher-targets --overwrite)"
            )
        self.index["created"] = old.get("created", self.index["created"])
        for i, shard in enumerate(old["shards"]):
            path = self.root / shard["file"]
            if "sha256" in shard and path.is_file() and file_sha256(path) == shard["sha256"]:
                self.index["shards"][i] = shard
                self.done.add(i)
        self._rebuild_samples()

    def _rebuild_samples(self) -> None:
        self.index["samples"] = {
            tok: [i, k] for i in sorted(self.done) for k, tok in enumerate(self.index["shards"][i]["tokens"])
        }

    def pending(self) -> list[int]:
        """Shard indices still to write, in order."""
        return [i for i in range(len(self.plan)) if i not in self.done]

    def write_shard(self, i: int, targets: Iterable[TeacherTargets]) -> Path:
        """Write shard ``i`` (its samples in plan order), then the index. Returns the shard's path."""
        stored = [t.as_stored() for t in targets]
        tokens = [t.sample_token for t in stored]
        if tokens != self.plan[i]:
            raise TargetCacheError(f"shard {i}: got samples {tokens[:3]}..., the plan says {self.plan[i][:3]}...")
        for t in stored:
            self.header.check(t)
        entry = self.index["shards"][i]
        path = self.root / entry["file"]
        data = _shard_bytes(stored)
        _write_atomic(path, data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["bytes"] = len(data)
        self.done.add(i)
        self._rebuild_samples()
        self._write_index()
        return path

    def finish(self) -> Path:
        """Mark the cache complete (all shards written). Returns the index path."""
        missing = self.pending()
        if missing:
            raise TargetCacheError(f"{self.root}: shards {missing[:5]} are not written yet")
        self.index["complete"] = True
        return self._write_index()

    def _write_index(self) -> Path:
        path = self.root / INDEX_NAME
        _write_atomic(path, (json.dumps(self.index, indent=1) + "\n").encode())
        return path


class TargetCache:
    """Read a teacher-target cache.

    Raises:
        TargetCacheError: no ``index.json`` under ``root``, another format or format version, a malformed index.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / INDEX_NAME
        if not path.is_file():
            raise TargetCacheError(f"teacher-target cache {self.root}: {INDEX_NAME} not found")
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TargetCacheError(f"{path} is unreadable: {exc}") from exc
        if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
            raise TargetCacheError(f"{path} is not a teacher-target index (format {FORMAT_NAME})")
        if index.get("format_version") != FORMAT_VERSION:
            raise TargetCacheError(
                f"{path} has format version {index.get('format_version')}; this code reads version {FORMAT_VERSION} "
                "(rebuild with imkd teacher-targets)"
            )
        self.index = index
        self.header = CacheHeader.from_dict(index.get("header", {}))
        try:
            self._samples: dict[str, tuple[int, int]] = {t: (int(s), int(o)) for t, (s, o) in index["samples"].items()}
            self._shards: list[dict[str, Any]] = list(index["shards"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TargetCacheError(f"{path} is malformed: {exc}") from exc
        self._loaded: tuple[int, list[TeacherTargets]] | None = None

    @property
    def complete(self) -> bool:
        """True when every planned shard was written."""
        return bool(self.index.get("complete"))

    @property
    def tokens(self) -> list[str]:
        """Sample tokens held (written shards only)."""
        return list(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def __contains__(self, token: object) -> bool:
        return token in self._samples

    def nbytes(self) -> int:
        """Bytes of the written shards."""
        return sum(int(s.get("bytes", 0)) for s in self._shards)

    def _shard(self, i: int, verify: bool) -> list[TeacherTargets]:
        if self._loaded is not None and self._loaded[0] == i:
            return self._loaded[1]
        entry = self._shards[i]
        path = self.root / entry["file"]
        if not path.is_file():
            raise TargetCacheError(f"teacher-target shard {path} is missing")
        if verify and file_sha256(path) != entry.get("sha256"):
            raise TargetCacheError(f"teacher-target shard {path} fails its sha256 checksum (corrupt or replaced)")
        samples = _read_shard(path)
        if [t.sample_token for t in samples] != list(entry["tokens"]):
            raise TargetCacheError(f"teacher-target shard {path} does not hold the samples its index lists")
        self._loaded = (i, samples)
        return samples

    def get(self, token: str, verify: bool = False) -> TeacherTargets:
        """One sample's targets (its shard is read, and kept until another shard is needed).

        Raises:
            TargetCacheError: the token is not in the cache, or its shard is missing/corrupt.
        """
        if token not in self._samples:
            raise TargetCacheError(f"sample {token} is not in the teacher-target cache {self.root}")
        shard, offset = self._samples[token]
        return self._shard(shard, verify)[offset]

    def verify(self) -> None:
        """Check every written shard's sha256. Raises :class:`TargetCacheError` naming the first bad shard."""
        for entry in self._shards:
            if "sha256" not in entry:
                continue
            path = self.root / entry["file"]
            if not path.is_file():
                raise TargetCacheError(f"teacher-target shard {path} is missing")
            if file_sha256(path) != entry["sha256"]:
                raise TargetCacheError(f"teacher-target shard {path} fails its sha256 checksum (corrupt or replaced)")

    def load_all(self, tokens: Iterable[str] | None = None, verify: bool = True) -> dict[str, TeacherTargets]:
        """``{token: TeacherTargets}`` for ``tokens`` (default: all), reading each needed shard once.

        Raises:
            TargetCacheError: a token missing from the cache (the message counts them and names the first), or a
                missing/corrupt shard.
        """
        wanted = self.tokens if tokens is None else list(tokens)
        missing = [t for t in wanted if t not in self._samples]
        if missing:
            raise TargetCacheError(
                f"{len(missing)} of {len(wanted)} samples are not in the teacher-target cache {self.root} "
                f"(first: {missing[0]}); build it for this split with imkd teacher-targets"
            )
        out: dict[str, TeacherTargets] = {}
        by_shard: dict[int, list[str]] = {}
        for t in wanted:
            by_shard.setdefault(self._samples[t][0], []).append(t)
        for i in sorted(by_shard):
            samples = self._shard(i, verify)
            for t in by_shard[i]:
                out[t] = samples[self._samples[t][1]]
        self._loaded = None
        return {t: out[t] for t in wanted}
