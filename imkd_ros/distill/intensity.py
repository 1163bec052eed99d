r"""Intensity maps: where, and how strongly, the LiDAR teacher "sees" something, on the head grid.

IMKD's abstract says its intensity-aware distillation transfers depth cues, geometric structure and point-density
patterns from LiDAR; what "intensity" means exactly is not published. Two readings exist (LiDAR reflectance /
point density, and feature-activation magnitude as in RadarDistill), so this module computes all three and lets
the distillation mix them (:attr:`imkd_ros.distill.config.DistillConfig.intensity_mix`). Every map is
``(B, 3, H, W)`` on the teacher/student head grid (row = y bin, column = x bin, ego frame), channels
:data:`INTENSITY_NAMES`, each normalised to [0, 1] and exactly 0 in a cell without LiDAR points (density,
reflectance):

``density``
    :math:`\min\big(1, \log(1 + n) / \log(1 + n_{sat})\big)` where :math:`n` is the number of LiDAR points of the
    teacher's input (inside the grid and its z range) that fall in the head cell and
    :math:`n_{sat}` = :attr:`IntensitySpec.density_saturation` (default 64 points per 0.8 m cell).
``reflectance``
    mean reflectance intensity of those points divided by ``LidarConfig.max_intensity`` (255 for nuScenes), clipped
    to [0, 1]; 0 in empty cells.
``activation``
    teacher feature-activation magnitude :math:`a = \frac{1}{C}\sum_c |F_c|` of the teacher's BEV network output
    ``TeacherOutput.bev`` ``(C, H, W)``, above a per-sample baseline and relative to the sample's peak:
    :math:`\min\big(1, \max(0, (a - a_q) / (a_{max} - a_q))\big)` with :math:`a_q` the
    :attr:`IntensitySpec.activation_quantile` quantile of :math:`a` over the grid (default the median, so about half
    the cells, the teacher's "background texture", get 0, as RadarDistill distils only where activation exceeds a
    threshold; quantile 0 gives plain :math:`a / a_{max}`); 0 everywhere if :math:`a_{max} = a_q`.

The combined per-cell weight used by the losses is the mix-weighted mean
:math:`I = \sum_i m_i\,\mathrm{map}_i / \sum_i m_i \in [0, 1]` (:func:`combine_intensity`). The teacher-target cache
stores the three maps (float16), so the mix can change without re-running the teacher. :func:`draw_intensity`
writes a debug PNG of the three maps and their combination.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imkd_ros.distill.errors import DistillConfigError
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.teacher import TeacherOutput

__all__ = [
    "INTENSITY_NAMES",
    "IntensitySpec",
    "DEFAULT_SPEC",
    "intensity_maps",
    "teacher_intensity",
    "combine_intensity",
    "draw_intensity",
]

#: Channel names of an intensity map, in order.
INTENSITY_NAMES: tuple[str, ...] = ("density", "reflectance", "activation")


@dataclass(frozen=True)
class IntensitySpec:
    """How the intensity maps are normalised (recorded in the cache index).

    Attributes:
        density_saturation: LiDAR points per head cell at which ``density`` reaches 1 (> 0).
        activation_quantile: quantile (0-1) of the sample's activation magnitudes taken as the ``activation``
            baseline (0: no baseline).
    """

    density_saturation: float = 64.0
    activation_quantile: float = 0.5

    def __post_init__(self) -> None:
        if not self.density_saturation > 0:
            raise DistillConfigError(f"IntensitySpec.density_saturation must be > 0, got {self.density_saturation}")
        if not 0.0 <= self.activation_quantile < 1.0:
            raise DistillConfigError(
                f"IntensitySpec.activation_quantile must be in [0, 1), got {self.activation_quantile}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"density_saturation": float(self.density_saturation), "activation_quantile": self.activation_quantile}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntensitySpec:
        return cls(float(data["density_saturation"]), float(data.get("activation_quantile", 0.0)))


#: The default normalisation.
DEFAULT_SPEC = IntensitySpec()


def intensity_maps(
    lidar_intensity: torch.Tensor,
    features: torch.Tensor,
    density_scale: float,
    spec: IntensitySpec = DEFAULT_SPEC,
) -> torch.Tensor:
    """The three normalised maps (see the module docstring).

    Args:
        lidar_intensity: ``(B, 2, H, W)`` the LiDAR pillar encoder's maps: ``log1p(n) / density_scale`` and mean
            reflectance ``/ max_intensity`` (``TeacherOutput.lidar_intensity``).
        features: ``(B, C, H, W)`` teacher BEV features (``TeacherOutput.bev``).
        density_scale: the teacher's ``LidarConfig.density_scale``.
        spec: normalisation.

    Returns:
        ``(B, 3, H, W)`` float32 in [0, 1], channels :data:`INTENSITY_NAMES`.
    """
    if lidar_intensity.dim() != 4 or lidar_intensity.shape[1] != 2:
        raise ValueError(f"intensity_maps: lidar_intensity must be (B, 2, H, W), got {tuple(lidar_intensity.shape)}")
    b, _, h, w = lidar_intensity.shape
    if features.dim() != 4 or features.shape[0] != b or features.shape[2:] != (h, w):
        raise ValueError(
            f"intensity_maps: features must be (B={b}, C, {h}, {w}) like lidar_intensity, got {tuple(features.shape)}"
        )
    li = lidar_intensity.float()
    density = (li[:, 0:1] * density_scale / math.log1p(spec.density_saturation)).clamp(0.0, 1.0)
    reflectance = li[:, 1:2].clamp(0.0, 1.0)
    act = features.float().abs().mean(dim=1, keepdim=True)
    peak = act.amax(dim=(2, 3), keepdim=True)
    if spec.activation_quantile > 0:
        base = torch.quantile(act.flatten(1), spec.activation_quantile, dim=1).view(b, 1, 1, 1)
    else:
        base = torch.zeros_like(peak)
    span = peak - base
    activation = torch.where(
        span > 0, (act - base) / span.clamp(min=torch.finfo(act.dtype).tiny), torch.zeros_like(act)
    )
    return torch.cat([density, reflectance, activation.clamp(0.0, 1.0)], dim=1)


def teacher_intensity(output: TeacherOutput, config: ModelConfig, spec: IntensitySpec = DEFAULT_SPEC) -> torch.Tensor:
    """:func:`intensity_maps` of a teacher forward pass (``config`` is the teacher's). Returns ``(B, 3, H, W)``."""
    return intensity_maps(output.lidar_intensity, output.bev, config.lidar.density_scale, spec)


def combine_intensity(maps: torch.Tensor, mix: Sequence[float]) -> torch.Tensor:
    """Mix-weighted mean of the maps.

    Args:
        maps: ``(B, 3, H, W)`` in [0, 1], channels :data:`INTENSITY_NAMES`.
        mix: 3 non-negative weights with a positive sum.

    Returns:
        ``(B, 1, H, W)`` in [0, 1].
    """
    if maps.dim() != 4 or maps.shape[1] != len(INTENSITY_NAMES):
        raise ValueError(f"combine_intensity: maps must be (B, 3, H, W), got {tuple(maps.shape)}")
    m = [float(v) for v in mix]
    if len(m) != 3 or min(m) < 0 or sum(m) <= 0:
        raise DistillConfigError(f"combine_intensity: mix needs 3 values >= 0 with a positive sum, got {tuple(mix)}")
    weights = maps.new_tensor(m).view(1, 3, 1, 1) / sum(m)
    return (maps * weights).sum(dim=1, keepdim=True)


def draw_intensity(
    path: str | Path,
    maps: np.ndarray | torch.Tensor,
    extent: tuple[float, float, float, float],
    mix: Sequence[float] = (1.0, 0.0, 1.0),
    title: str | None = None,
) -> Path:
    """Write a debug PNG: the three maps and their ``mix`` combination, x forward drawn up, y left drawn left.

    Args:
        path: PNG to write (folders are created).
        maps: ``(3, H, W)`` one sample's maps (channels :data:`INTENSITY_NAMES`).
        extent: ``(x_min, x_max, y_min, y_max)`` of the grid (m, ego frame).
        mix: weights of the combined panel.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    if arr.dim() != 3 or arr.shape[0] != 3:
        raise ValueError(f"draw_intensity: maps must be (3, H, W), got {tuple(arr.shape)}")
    combined = combine_intensity(arr[None], mix)[0, 0]
    panels = [*(arr[i] for i in range(3)), combined]
    names = [*INTENSITY_NAMES, "combined " + "/".join(f"{v:g}" for v in mix)]
    x0, x1, y0, y1 = extent
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), dpi=90)
    for ax, img, name in zip(axes, panels, names, strict=True):
        # rows are y, columns x: transpose so x runs up, then show +y to the left as in imkd_ros.viz.draw_bev
        im = ax.imshow(img.numpy().T, origin="lower", extent=(y0, y1, x0, x1), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.invert_xaxis()
        ax.set_title(name)
        ax.set_xlabel("y (m, left)")
        ax.set_ylabel("x (m, forward)")
    fig.colorbar(im, ax=list(axes), fraction=0.02)
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    plt.close(fig)
    return path
