"""The teacher targets of a training run, in memory: cached float16 maps batched into float32 tensors.

The student's loop never runs the teacher: :meth:`TargetBank.from_cache` reads the whole cache once (about 0.5 MB
per sample), :meth:`TargetBank.batch` stacks the samples of a batch by sample token. :meth:`TargetBank.from_caches`
joins several caches of one teacher (e.g. the labelled split's, built from the dataset, and unlabelled drives',
built from their bags); :meth:`TargetBank.targets` gives a sample's cached boxes (pseudo-labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from imkd_ros.distill.cache import CacheHeader, TargetCache, TargetGrid, TeacherTargets
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.errors import DistillConfigError, TargetCacheError
from imkd_ros.model.config import ModelConfig

__all__ = ["TargetsBatch", "TargetBank"]


def _shared(header: CacheHeader) -> dict[str, object]:
    """What samples of several caches must share to be trained on together: the header without the source and the
    teacher checkpoint's path (its sha256 stays)."""
    d = header.to_dict()
    d.pop("source", None)
    d["teacher"] = {k: v for k, v in d.get("teacher", {}).items() if k != "checkpoint"}
    return d


@dataclass(frozen=True)
class TargetsBatch:
    """Teacher targets of a batch (float32, on one device), on the head grid ``(H, W)``.

    Attributes:
        features: ``(B, C_t, H, W)`` teacher BEV features.
        intensity: ``(B, 3, H, W)`` density, reflectance, activation in [0, 1].
        heatmap: ``(B, K, H, W)`` teacher heatmap probabilities.
        tokens: the B sample tokens.
    """

    features: torch.Tensor
    intensity: torch.Tensor
    heatmap: torch.Tensor
    tokens: list[str]

    def to(self, device: torch.device | str) -> TargetsBatch:
        return TargetsBatch(
            self.features.to(device), self.intensity.to(device), self.heatmap.to(device), list(self.tokens)
        )


class TargetBank:
    """``sample_token -> targets`` held as float16 tensors.

    Args:
        targets: the samples (e.g. :meth:`TargetCache.load_all`).
        header: the cache header they share.
    """

    def __init__(self, targets: dict[str, TeacherTargets], header: CacheHeader) -> None:
        self.header = header
        self._targets = dict(targets)  # the maps below share their memory
        self._maps: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
            tok: (torch.from_numpy(t.features), torch.from_numpy(t.intensity), torch.from_numpy(t.heatmap))
            for tok, t in targets.items()
        }

    @classmethod
    def from_cache(cls, root: str | Path, tokens: Iterable[str] | None = None, verify: bool = True) -> TargetBank:
        """Read ``tokens`` (default: all) of the cache at ``root``, checking shard checksums when ``verify``.

        Raises:
            TargetCacheError: missing cache or samples, corrupt shards, another format version.
        """
        cache = TargetCache(root)
        return cls(cache.load_all(tokens, verify=verify), cache.header)

    @classmethod
    def from_caches(
        cls, roots: Sequence[str | Path], tokens: Iterable[str] | None = None, verify: bool = True
    ) -> TargetBank:
        """Like :meth:`from_cache` over several caches of one teacher: each sample is taken from the first cache
        holding it (``tokens`` None: every sample of every cache).

        Raises:
            TargetCacheError: no cache, a missing or corrupt cache, samples in none of them (counted, the first
                named), or caches of different teachers, grids, classes, intensity settings or box limits.
        """
        if not roots:
            raise TargetCacheError("no teacher-target cache given")
        caches = [TargetCache(r) for r in roots]
        first = _shared(caches[0].header)
        for c in caches[1:]:
            other = _shared(c.header)
            if other != first:
                key = next(k for k in first if first[k] != other.get(k))
                raise TargetCacheError(
                    f"teacher-target caches {caches[0].root} and {c.root} differ in {key} "
                    f"({first[key]!r} vs {other.get(key)!r}); build them with the same teacher and settings"
                )
        wanted = list(dict.fromkeys(t for c in caches for t in c.tokens)) if tokens is None else list(tokens)
        owner: dict[int, list[str]] = {}
        missing = []
        for t in wanted:
            i = next((i for i, c in enumerate(caches) if t in c), None)
            if i is None:
                missing.append(t)
            else:
                owner.setdefault(i, []).append(t)
        if missing:
            names = ", ".join(str(c.root) for c in caches)
            raise TargetCacheError(
                f"{len(missing)} of {len(wanted)} samples are not in the teacher-target cache {names} "
                f"(first: {missing[0]}); build it for this split with imkd teacher-targets"
            )
        found: dict[str, TeacherTargets] = {}
        for i, toks in owner.items():
            found.update(caches[i].load_all(toks, verify=verify))
        return cls({t: found[t] for t in wanted}, caches[0].header)

    def __len__(self) -> int:
        return len(self._maps)

    def __contains__(self, token: object) -> bool:
        return token in self._maps

    def targets(self, token: str) -> TeacherTargets:
        """A sample's cached targets (maps as stored, float16; boxes, labels, scores: the teacher's detections).

        Raises:
            TargetCacheError: a token not in the bank.
        """
        try:
            return self._targets[token]
        except KeyError:
            raise TargetCacheError(f"sample {token} has no teacher targets in the bank") from None

    @property
    def grid(self) -> TargetGrid:
        return self.header.grid

    @property
    def feature_channels(self) -> int:
        return self.header.feature_channels

    def check_student(self, config: ModelConfig, distill: DistillConfig) -> None:
        """Raise :class:`DistillConfigError` unless a student of ``config`` can be distilled with ``distill`` from
        this bank: same head grid; stage 1 needs a radar branch, stage 3 camera + radar (the fuser's gates), the
        heatmap response (stage 2) the same classes."""
        grid = TargetGrid.from_model_config(config)
        if not grid.matches(self.grid):
            raise DistillConfigError(
                f"the teacher targets are on grid {self.grid.to_dict()}, the student's head grid is {grid.to_dict()}; "
                "build the cache with a teacher of the student's grid"
            )
        mods = set(config.modalities)
        if distill.has("stage1") and "radar" not in mods:
            raise DistillConfigError(
                f"stage1 distils the radar branch; the student's modalities are {config.modalities}"
            )
        if distill.has("stage3") and mods != {"camera", "radar"}:
            raise DistillConfigError(
                f"stage3 supervises the camera-radar fusion gates; the student's modalities are {config.modalities}"
            )
        if distill.has("stage2") and distill.stage2_response_weight > 0:
            if tuple(self.header.class_names) != tuple(config.classes):
                raise DistillConfigError(
                    f"stage2 response distillation needs the teacher's classes {list(self.header.class_names)} "
                    f"to equal the student's {list(config.classes)}"
                )

    def batch(self, tokens: Sequence[str], device: torch.device | str = "cpu") -> TargetsBatch:
        """Stack the targets of ``tokens`` as float32 on ``device``.

        Raises:
            TargetCacheError: a token not in the bank.
        """
        try:
            maps = [self._maps[t] for t in tokens]
        except KeyError as exc:
            raise TargetCacheError(f"sample {exc.args[0]} has no teacher targets in the bank") from None
        stacked = [torch.stack([m[i] for m in maps]).to(device=device, dtype=torch.float32) for i in range(3)]
        return TargetsBatch(stacked[0], stacked[1], stacked[2], list(tokens))
