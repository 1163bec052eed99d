r"""Intensity maps: where, and how strongly, the LiDAR teacher "sees" *structure*, on the head grid.

IMKD's abstract says its intensity-aware distillation transfers depth cues, geometric structure and point-density
patterns from LiDAR; what "intensity" means exactly is not published. Two readings exist (LiDAR point density /
reflectance, and feature-activation magnitude as in RadarDistill), so this module computes both and lets the
distillation mix them (:attr:`imkd_ros.distill.config.DistillConfig.intensity_mix`). Every map is
``(B, 3, H, W)`` on the teacher/student head grid (row = y bin, column = x bin, ego frame), channels
:data:`INTENSITY_NAMES`, each normalised to [0, 1]:

``density`` (structure)
    :math:`\min\big(1, \log(1 + n) / \log(1 + n_{sat})\big)` where :math:`n` is the number of *non-ground* LiDAR
    points of the teacher's input (inside the grid and its z range) in the head cell and
    :math:`n_{sat}` = :attr:`IntensitySpec.density_saturation` (default 64). A point is ground when
    :math:`z \le g + h_c` (:func:`non_ground_mask`), :math:`h_c` = :attr:`IntensitySpec.ground_clearance`
    (default 0.3 m) above the local ground height :math:`g`:

    .. math:: g = \begin{cases} \pi & \text{if } m_7 > \pi + h_c \\
              \max(m_7, \pi - 0.1\,\mathrm{m}) & \text{otherwise}\end{cases}

    with :math:`m_7` the lowest point of the 7x7 ground tiles (:attr:`IntensitySpec.ground_tile`, default 2 m:
    a 14 m window, wider than the gaps between the far rings of a 32-beam LiDAR) around the point's tile and
    :math:`\pi` a ground plane :math:`z = a + b x + c y` fitted by least squares to the tiles' lowest points,
    refitted three times without the tiles whose lowest point stands more than 0.5 m above it (cars, walls). The
    plane follows a uniform slope (where a window's lowest point lies below the ground of its uphill side), the
    local minimum follows terrain the plane does not fit by up to :math:`h_c`, and the plane covers windows with
    no ground return (LiDAR shadows; the far field of a 32-beam LiDAR, whose rings are metres apart and, uphill,
    end short of the grid), where the lowest point is an object's. Ground whose whole window rises more than
    :math:`h_c` above the plane (a crest the plane does not fit) counts as structure: the price of keeping
    objects with no ground return around them. Ground, the bulk of a LiDAR sweep and densest near the ego, so
    gets 0, and the map marks objects, poles, vegetation and walls. With ``ground_clearance = 0`` every point
    counts (the LiDAR encoder's own count, ``TeacherOutput.lidar_intensity``; caches written before ground
    removal are read as such). On the synthetic validation frames with the shipped teacher (10 sweeps) ground
    removal takes the cells with a density from about 600 to 180 per frame and the density's share within 12 m
    of the ego from 52 % to 29 % (what remains there is mostly nearby cars, whose many points saturate the map).
``reflectance``
    mean reflectance intensity of those (non-ground) points divided by ``LidarConfig.max_intensity`` (255 for
    nuScenes), clipped to [0, 1]; 0 in cells without such points.
``activation``
    teacher feature-activation magnitude :math:`a = \frac{1}{C}\sum_c |F_c|` of the teacher's BEV network output
    ``TeacherOutput.bev`` ``(C, H, W)``, above a per-sample threshold and relative to the sample's peak:
    :math:`\min\big(1, \max(0, (a - a_q) / (a_{max} - a_q))\big)` with :math:`a_q` the
    :attr:`IntensitySpec.activation_quantile` quantile of :math:`a` over the grid (default the median, so about half
    the cells, the teacher's "background texture", get 0, as RadarDistill distils only where activation exceeds a
    threshold; quantile 0 gives plain :math:`a / a_{max}`); 0 everywhere if :math:`a_{max} = a_q`.

Which reading is used is the distillation's choice: the combined per-cell weight used by the losses is the
mix-weighted mean :math:`I = \sum_i m_i\,\mathrm{map}_i / \sum_i m_i \in [0, 1]` (:func:`combine_intensity`;
``(1, 0, 0)`` structure only, ``(0, 0, 1)`` activation only, default ``(1, 0, 1)`` both). The teacher-target cache
stores the three maps (float16), so the mix can change without re-running the teacher; ground removal needs the
raw LiDAR and happens when the cache is built (:func:`teacher_intensity` with ``lidar=``). The stage-3 gate targets
also read the ``density`` channel as "LiDAR structure" (:mod:`imkd_ros.distill.losses`). :func:`draw_intensity`
writes a debug PNG of the three maps and their combination.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from imkd_ros.distill.errors import DistillConfigError
from imkd_ros.model.bev_scatter import bev_cell_index, scatter_sum, to_bev_image
from imkd_ros.model.config import GridConfig, ModelConfig
from imkd_ros.model.teacher import TeacherOutput

__all__ = [
    "INTENSITY_NAMES",
    "IntensitySpec",
    "DEFAULT_SPEC",
    "head_grid",
    "non_ground_mask",
    "structure_maps",
    "activation_map",
    "intensity_maps",
    "teacher_intensity",
    "combine_intensity",
    "draw_intensity",
]

#: Channel names of an intensity map, in order.
INTENSITY_NAMES: tuple[str, ...] = ("density", "reflectance", "activation")

#: Side, in ground tiles, of the window whose lowest point is the local ground (7 tiles of 2 m: 14 m, wider than
#: the gaps between the far rings of a 32-beam LiDAR at 25-40 m, so a car there still has ground in its window).
_GROUND_WINDOW = 7
#: Tiles whose lowest point stands more than this above the plane (m) are left out of the next plane fit.
_PLANE_OUTLIER = 0.5
#: The local ground is never taken lower than this below the plane (m): on a slope the lowest point of a window
#: lies below the ground under the window's uphill side.
_BELOW_PLANE = 0.1


@dataclass(frozen=True)
class IntensitySpec:
    """How the intensity maps are computed and normalised (recorded in the cache index).

    Attributes:
        density_saturation: non-ground LiDAR points per head cell at which ``density`` reaches 1 (> 0).
        activation_quantile: quantile (0-1) of the sample's activation magnitudes taken as the ``activation``
            threshold (0: no threshold).
        ground_clearance: metres above the local ground under which a LiDAR point is ground and not counted in
            ``density`` / ``reflectance`` (>= 0; 0: no ground removal, every point counts).
        ground_tile: side (m) of the tiles whose lowest points estimate the local ground (> 0).
    """

    density_saturation: float = 64.0
    activation_quantile: float = 0.5
    ground_clearance: float = 0.3
    ground_tile: float = 2.0

    def __post_init__(self) -> None:
        if not self.density_saturation > 0:
            raise DistillConfigError(f"IntensitySpec.density_saturation must be > 0, got {self.density_saturation}")
        if not 0.0 <= self.activation_quantile < 1.0:
            raise DistillConfigError(
                f"IntensitySpec.activation_quantile must be in [0, 1), got {self.activation_quantile}"
            )
        if not self.ground_clearance >= 0:
            raise DistillConfigError(f"IntensitySpec.ground_clearance must be >= 0 m, got {self.ground_clearance}")
        if not self.ground_tile > 0:
            raise DistillConfigError(f"IntensitySpec.ground_tile must be > 0 m, got {self.ground_tile}")

    @property
    def removes_ground(self) -> bool:
        """True when ``density`` / ``reflectance`` count non-ground points only (needs the raw LiDAR)."""
        return self.ground_clearance > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "density_saturation": float(self.density_saturation),
            "activation_quantile": float(self.activation_quantile),
            "ground_clearance": float(self.ground_clearance),
            "ground_tile": float(self.ground_tile),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntensitySpec:
        """Inverse of :meth:`to_dict`. Keys missing in an older cache take the values that cache was written with:
        no activation threshold, no ground removal."""
        return cls(
            float(data["density_saturation"]),
            float(data.get("activation_quantile", 0.0)),
            float(data.get("ground_clearance", 0.0)),
            float(data.get("ground_tile", cls.ground_tile)),
        )


#: The default: non-ground density, median activation threshold.
DEFAULT_SPEC = IntensitySpec()


def head_grid(grid: GridConfig) -> GridConfig:
    """The head grid of ``grid`` (``out_cell`` cells) as a stride-1 grid, to scatter points straight into head
    cells with :func:`~imkd_ros.model.bev_scatter.bev_cell_index`."""
    return replace(grid, cell=grid.out_cell, stride=1)


def non_ground_mask(
    points: torch.Tensor,
    mask: torch.Tensor | None,
    grid: GridConfig,
    clearance: float = DEFAULT_SPEC.ground_clearance,
    tile: float = DEFAULT_SPEC.ground_tile,
) -> torch.Tensor:
    """Which points stand above the local ground (the ground model is in the module docstring).

    Args:
        points: ``(B, P, 3+)`` ego-frame x, y, z (m) first.
        mask: ``(B, P)`` bool, True for real points (None: all real).
        grid: the BEV grid; points outside its x, y or z range are never non-ground.
        clearance: metres above the local ground a point must exceed.
        tile: ground tile side (m).

    Returns:
        ``(B, P)`` bool.
    """
    b, p = points.shape[:2]
    xyz = points[..., :3].float()
    inside = bev_cell_index(xyz, grid, mask) < b * grid.ny * grid.nx  # (B, P): in the grid and its z range
    x0, x1 = grid.x_range
    y0, y1 = grid.y_range
    ntx, nty = max(1, math.ceil((x1 - x0) / tile)), max(1, math.ceil((y1 - y0) / tile))
    tx = torch.floor((xyz[..., 0] - x0) / tile).long().clamp(0, ntx - 1)
    ty = torch.floor((xyz[..., 1] - y0) / tile).long().clamp(0, nty - 1)
    tiles = nty * ntx
    flat = torch.arange(b, device=xyz.device).view(b, 1) * tiles + ty * ntx + tx
    flat = torch.where(inside, flat, torch.full_like(flat, b * tiles))
    inf = torch.tensor(float("inf"), device=xyz.device)
    zmin = torch.full((b * tiles + 1,), float("inf"), device=xyz.device)
    zmin = zmin.scatter_reduce(0, flat.reshape(-1), xyz[..., 2].reshape(-1), "amin", include_self=True)[:-1]
    zmin = zmin.view(b, tiles)
    w = _GROUND_WINDOW
    local = -F.max_pool2d(-zmin.view(b, 1, nty, ntx), w, stride=1, padding=w // 2).view(b, tiles)
    # ground plane z = a + b x + c y through the tiles' lowest points (coordinates in units of the grid span)
    span = max(x1 - x0, y1 - y0)
    cx = (x0 + (torch.arange(ntx, device=xyz.device, dtype=torch.float32) + 0.5) * tile) / span
    cy = (y0 + (torch.arange(nty, device=xyz.device, dtype=torch.float32) + 0.5) * tile) / span
    gy, gx = torch.meshgrid(cy, cx, indexing="ij")
    design = torch.stack([torch.ones_like(gx), gx, gy], dim=-1).reshape(tiles, 3)  # (T, 3)
    finite = torch.isfinite(zmin)
    z = torch.where(finite, zmin, torch.zeros_like(zmin))
    ridge = torch.diag(design.new_tensor([1e-6, 1e-2, 1e-2]))  # few tiles: the flat plane through their mean
    weight = finite.float()
    plane = torch.zeros_like(z)
    for _ in range(3):
        ata = torch.einsum("bt,ti,tj->bij", weight, design, design) + ridge
        atz = torch.einsum("bt,ti,bt->bi", weight, design, z)
        plane = (design @ torch.linalg.solve(ata, atz).unsqueeze(-1)).squeeze(-1)  # (B, T)
        weight = (finite & (z - plane < _PLANE_OUTLIER)).float()
    ground = torch.where(local > plane + clearance, plane, torch.maximum(local, plane - _BELOW_PLANE))
    ground = torch.cat([ground.reshape(-1), inf.view(1)])  # the dump row: never non-ground
    return inside & (xyz[..., 2] > ground[flat] + clearance)


def structure_maps(
    lidar: torch.Tensor,
    lidar_mask: torch.Tensor | None,
    grid: GridConfig,
    max_intensity: float,
    spec: IntensitySpec = DEFAULT_SPEC,
) -> torch.Tensor:
    """The ``density`` and ``reflectance`` maps of the LiDAR points above the ground (module docstring).

    Args:
        lidar: ``(B, M, 6)`` ego-frame points, columns :data:`imkd_ros.core.types.LIDAR_FEATURES` (reflectance in
            column 3), zero-padded.
        lidar_mask: ``(B, M)`` bool (None: all real).
        grid: the teacher's grid (maps on its head grid ``(out_ny, out_nx)``).
        max_intensity: reflectance divisor (``LidarConfig.max_intensity``).
        spec: ground clearance and tile, density saturation (``ground_clearance = 0``: every point).

    Returns:
        ``(B, 2, out_ny, out_nx)`` float32 in [0, 1]: density, reflectance.
    """
    if lidar.dim() != 3 or lidar.shape[-1] < 4:
        raise ValueError(f"structure_maps: lidar must be (B, M, 6), got {tuple(lidar.shape)}")
    b = lidar.shape[0]
    pts = lidar.float()
    keep = lidar_mask if lidar_mask is not None else torch.ones(pts.shape[:2], dtype=torch.bool, device=pts.device)
    if spec.removes_ground:
        keep = non_ground_mask(pts, keep, grid, spec.ground_clearance, spec.ground_tile)
    head = head_grid(grid)
    index = bev_cell_index(pts, head, keep)
    refl = pts[..., 3:4] / max_intensity
    sums = scatter_sum(torch.cat([refl, torch.ones_like(refl)], dim=-1), index, head.ny * head.nx)
    stats = to_bev_image(sums, b, head)  # (B, 2, H, W): reflectance sum, count
    n = stats[:, 1:2]
    density = (torch.log1p(n) / math.log1p(spec.density_saturation)).clamp(0.0, 1.0)
    reflectance = (stats[:, 0:1] / n.clamp(min=1.0)).clamp(0.0, 1.0)
    return torch.cat([density, reflectance], dim=1)


def activation_map(features: torch.Tensor, spec: IntensitySpec = DEFAULT_SPEC) -> torch.Tensor:
    """The ``activation`` map of teacher features ``(B, C, H, W)`` -> ``(B, 1, H, W)`` in [0, 1]."""
    act = features.float().abs().mean(dim=1, keepdim=True)
    b = act.shape[0]
    peak = act.amax(dim=(2, 3), keepdim=True)
    if spec.activation_quantile > 0:
        base = torch.quantile(act.flatten(1), spec.activation_quantile, dim=1).view(b, 1, 1, 1)
    else:
        base = torch.zeros_like(peak)
    span = peak - base
    activation = torch.where(
        span > 0, (act - base) / span.clamp(min=torch.finfo(act.dtype).tiny), torch.zeros_like(act)
    )
    return activation.clamp(0.0, 1.0)


def intensity_maps(
    lidar_intensity: torch.Tensor,
    features: torch.Tensor,
    density_scale: float,
    spec: IntensitySpec = DEFAULT_SPEC,
) -> torch.Tensor:
    """The three maps from the LiDAR encoder's own per-cell statistics, which count *every* point (ground
    included): the ``ground_clearance = 0`` reading. With ground removal use :func:`teacher_intensity` with the
    raw LiDAR.

    Args:
        lidar_intensity: ``(B, 2, H, W)`` the LiDAR pillar encoder's maps: ``log1p(n) / density_scale`` and mean
            reflectance ``/ max_intensity`` (``TeacherOutput.lidar_intensity``).
        features: ``(B, C, H, W)`` teacher BEV features (``TeacherOutput.bev``).
        density_scale: the teacher's ``LidarConfig.density_scale``.
        spec: normalisation (its ground settings are not used here).

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
    return torch.cat([density, reflectance, activation_map(features, spec)], dim=1)


def teacher_intensity(
    output: TeacherOutput,
    config: ModelConfig,
    spec: IntensitySpec = DEFAULT_SPEC,
    lidar: torch.Tensor | None = None,
    lidar_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The intensity maps of a teacher forward pass (``config`` is the teacher's). Returns ``(B, 3, H, W)``.

    Args:
        output: the teacher's :meth:`~imkd_ros.model.Teacher.features` of ``lidar``.
        config: the teacher's model config.
        spec: what to compute.
        lidar: ``(B, M, 6)`` the teacher's input points; required when ``spec`` removes the ground.
        lidar_mask: ``(B, M)`` bool (None: all real).

    Raises:
        DistillConfigError: ``spec`` removes the ground and ``lidar`` is not given.
    """
    if not spec.removes_ground:
        return intensity_maps(output.lidar_intensity, output.bev, config.lidar.density_scale, spec)
    if lidar is None:
        raise DistillConfigError(
            f"teacher_intensity: ground removal (IntensitySpec.ground_clearance = {spec.ground_clearance} m) needs "
            "the teacher's input LiDAR: pass lidar=batch.lidar, lidar_mask=batch.lidar_mask "
            "(or IntensitySpec(ground_clearance=0) to count every point)"
        )
    device = output.bev.device
    mask = None if lidar_mask is None else lidar_mask.to(device)
    struct = structure_maps(lidar.to(device), mask, config.grid, config.lidar.max_intensity, spec)
    if struct.shape[2:] != output.bev.shape[2:]:
        raise ValueError(
            f"teacher_intensity: maps on {tuple(struct.shape[2:])}, teacher features on {tuple(output.bev.shape[2:])}"
        )
    return torch.cat([struct, activation_map(output.bev, spec)], dim=1)


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
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    arr = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    if arr.dim() != 3 or arr.shape[0] != 3:
        raise ValueError(f"draw_intensity: maps must be (3, H, W), got {tuple(arr.shape)}")
    combined = combine_intensity(arr[None], mix)[0, 0]
    panels = [*(arr[i] for i in range(3)), combined]
    names = [*INTENSITY_NAMES, "combined " + "/".join(f"{v:g}" for v in mix)]
    x0, x1, y0, y1 = extent
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(16, 4.6), dpi=90)
    axes = fig.subplots(1, 4)
    for ax, img, name in zip(axes, panels, names, strict=True):
        # rows are y, columns x: transpose so x runs up, then show +y to the left as in imkd_ros.evaluation.viz.draw_bev
        im = ax.imshow(img.numpy().T, origin="lower", extent=(y0, y1, x0, x1), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.invert_xaxis()
        ax.set_title(name)
        ax.set_xlabel("y (m, left)")
        ax.set_ylabel("x (m, forward)")
    fig.colorbar(im, ax=list(axes), fraction=0.02)
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    return path
