"""Training frames read from disk as they are needed (``imkd train --stream [--workers N]``): memory flat in the
dataset's size.

Without ``--stream`` the training loop reads every frame of its splits once, shrunk to the model's input, and keeps
them in memory (fast on small sets; nuScenes trainval's 28k keyframes x 6 cameras would need ~90 GB). With it,
:class:`StreamedFrames` holds only the sample tokens; each ``frames[i]`` reads that keyframe (images, radar and
LiDAR sweeps, annotations) through a :class:`~imkd_ros.data.reader.NuScenesReader` of its own process and shrinks it
(:func:`~imkd_ros.model.preprocess.shrink_frame`, the same function as the in-memory path, so a batch is the same to
the bit). The DataLoader's ``--workers`` processes read ahead of the step (each builds its reader once). The data
order depends only on (seed, epoch) as before, so ``--resume`` stays exact. ``--frame-cache DIR`` keeps each
shrunk frame on disk after its first read (:mod:`imkd_ros.training.frame_cache`): later epochs and later runs
read a few milliseconds instead of decoding the images again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from imkd_ros.core.types import Frame
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.training.frame_cache import FrameCache

__all__ = ["StreamedFrames", "frame_tokens", "frame_scenes"]


class StreamedFrames:
    """A sequence of frames read on access: ``len``, ``[i]`` (read + shrink), iteration, ``+`` (concatenation),
    :attr:`tokens`, :attr:`scenes`.

    Args:
        reader_options: keyword arguments of :class:`~imkd_ros.data.reader.NuScenesReader` (``dataroot``,
            ``version``, sweeps, what to load): each process builds its own reader from them.
        tokens: the sample tokens, in order (already checked: :func:`imkd_ros.data.check.usable_samples`).
        config: the model the frames are shrunk for.
        scenes: the scene of each token (for the checkpoint meta without reading frames).
        cache: folder of a :class:`~imkd_ros.training.frame_cache.FrameCache` (None: no cache).
    """

    def __init__(
        self,
        reader_options: dict[str, Any],
        tokens: Sequence[str],
        config: ModelConfig,
        scenes: Sequence[str],
        cache: str | Path | None = None,
    ) -> None:
        if len(scenes) != len(tokens):
            raise ValueError(f"StreamedFrames: {len(scenes)} scenes for {len(tokens)} tokens")
        self.reader_options = dict(reader_options)
        self.tokens = list(tokens)
        self.scenes = list(scenes)
        self.config = config
        self.cache = None if cache is None else Path(cache)
        self._reader: Any = None
        self._cache: FrameCache | None = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get the recipe, not the reader
        return {**self.__dict__, "_reader": None, "_cache": None}

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> Frame:
        token = self.tokens[index]
        if self.cache is None:
            return self._read(token)
        if self._cache is None:
            self._cache = FrameCache(self.cache, self.reader_options, self.config)
        return self._cache.get(token, lambda: self._read(token))

    def _read(self, token: str) -> Frame:
        if self._reader is None:
            from imkd_ros.data.reader import NuScenesReader

            self._reader = NuScenesReader(**self.reader_options)
        return shrink_frame(self._reader.frame(token), self.config)

    def __iter__(self) -> Iterator[Frame]:
        return (self[i] for i in range(len(self)))

    def __add__(self, other: StreamedFrames | Sequence[Frame]) -> StreamedFrames:
        if not isinstance(other, StreamedFrames):
            if len(other):
                raise ValueError("StreamedFrames: only streamed frames (or none) join streamed frames")
            return self
        if (other.reader_options, other.config, other.cache) != (self.reader_options, self.config, self.cache):
            raise ValueError("StreamedFrames: only frames of one reader, model and cache concatenate")
        tokens, scenes = self.tokens + other.tokens, self.scenes + other.scenes
        return StreamedFrames(self.reader_options, tokens, self.config, scenes, self.cache)


def frame_tokens(frames: Sequence[Frame] | StreamedFrames) -> list[str]:
    """The sample tokens of in-memory or streamed frames (streamed: without reading them)."""
    return list(frames.tokens) if isinstance(frames, StreamedFrames) else [f.token for f in frames]


def frame_scenes(frames: Sequence[Frame] | StreamedFrames) -> list[str]:
    """The scene of each frame, in-memory or streamed (streamed: without reading them)."""
    return list(frames.scenes) if isinstance(frames, StreamedFrames) else [f.scene for f in frames]
