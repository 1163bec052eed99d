r"""The three IMKD distillation losses (LiDAR teacher -> camera-radar student): where each one acts and how strongly.

Notation: student map :math:`S`, teacher features :math:`T` (cached, ``(B, C_t, H, W)``), the combined intensity
:math:`I \in [0, 1]^{B \times 1 \times H \times W}` (:func:`~imkd_ros.distill.intensity.combine_intensity`), the
cached LiDAR structure map :math:`D` (the ``density`` channel: non-ground LiDAR points), the teacher heatmap
probabilities :math:`P \in [0, 1]^{B \times K \times H \times W}` and :math:`m_u = \max_k P_{ku}`. Sums run over
cells :math:`u` of the batch. Cell sets (no gradient):

* teacher foreground :math:`\mathcal F = \{u : m_u > \theta_f\}` (:func:`teacher_foreground`,
  ``DistillConfig.foreground_threshold``, default 0.1, RadarDistill's heatmap > 0.1);
* radar-occupied :math:`\mathcal R = \{u : \text{the student's radar density} > 0\}` (:func:`radar_occupancy`,
  ``StudentOutput.radar_intensity``);
* response cells :math:`\mathcal C = \{u : m_u > \theta_c\} \cup \{u : \max_k \sigma(Z_{ku}) > \theta_c\}`, where
  the teacher is confident or the student is (rightly or wrongly) (:func:`response_cells`,
  ``DistillConfig.confidence_threshold``, default 0.3);
* the teacher's objects: :math:`N_T = \max(1, \#\{u \in \mathcal F : m_u = \max_{3 \times 3} m\})`, the local
  maxima of its heatmap (:func:`teacher_object_count`).

**Normalisation.** Every loss on foreground cells is a *sum* over its cells divided by :math:`N_T`, as the
CenterPoint focal loss divides its sum by the ground-truth object count :math:`N`: at an object cell a KD term
and the focal loss then pull with gradients of the same order (below). Background groups (radar returns off the
teacher's objects, the gates' negatives) are means over their cells: bounded whatever the scene.

Stage 1, LiDAR -> radar intensity-aware feature distillation (:func:`radar_feature_loss`), on the radar BEV
through the stage-1 adapter :math:`A_1`, where the radar can learn it: the teacher's objects, above all where the
radar returned from them, and the radar's other returns, RadarDistill-style with one normalisation per group:

.. math:: L_1 = \frac{1}{N_T} \sum_{u \in \mathcal O} I^+_u e_u
          + \frac{1}{|\mathcal R \setminus \mathcal F^+|} \sum_{u \in \mathcal R \setminus \mathcal F^+} I_u e_u,
          \qquad e_u = \frac{1}{C_t}\sum_c \big((A_1(S_r) - T)_{cu} / \sigma\big)^2

with :math:`\mathcal F^+` the cells within :math:`r_o` cells of :math:`\mathcal F` (``DistillConfig.object_radius``,
default 2 cells = 1.6 m: the heatmap marks an object's centre, its radar returns come from its faces; on the
synthetic set's validation frames only 3 of about 96 radar cells per frame fall in :math:`\mathcal F`, 36 in
:math:`\mathcal F^+`), :math:`\mathcal O = \mathcal F \cup (\mathcal R \cap \mathcal F^+)` the object cells,
:math:`I^+_u = \max_{|v - u|_\infty \le r_o} I_v` the intensity of the object around the cell (its LiDAR points
hit its faces: at ground-truth centres the cell's own non-ground density has a median of 0, :math:`I^+` of 0.53),
and :math:`\sigma^2` the weighted mean over :math:`\mathcal F \cup \mathcal R` of
:math:`\frac{1}{C_t}\sum_c T_{cu}^2` (no gradient): for an all-zero student (the zero-initialised adapter) the
weighted mean of :math:`e_u` is 1, whatever the teacher's feature scale. Cells outside
:math:`\mathcal F \cup \mathcal R` (empty space, ground, structure the radar did not return) get nothing.

Stage 2, LiDAR -> fused intensity-guided distillation, selective rather than forced. A relation
(channel-distribution) loss, not a regression, so the fused features keep what camera and radar add and only
match how the teacher distributes activation over channels on its objects (:func:`channel_kl`):

.. math:: L_{2f} = \frac{\tau^2}{N_T} \sum_{u \in \mathcal F} I^+_u\, \mathrm{KL}\big(
          \mathrm{softmax}_c(T_u/\tau s)\,\|\, \mathrm{softmax}_c(A_2(S_f)_u/\tau s)\big)

with :math:`s` the weighted mean over those cells of the teacher's standard deviation across channels (no
gradient: the temperature is relative to the teacher's feature scale). Response distillation of the heatmaps
(:func:`heatmap_kl`) only where the teacher is confident or the student claims an object, so the student's
background calibration is left to the ground truth:

.. math:: L_{2r} = \frac{1}{N_T} \sum_{u \in \mathcal C} \sum_k
          \mathrm{KL}\big(\mathrm{Bern}(P_{ku})\,\|\,\mathrm{Bern}(\sigma(Z_{ku}))\big)

Velocity is not distilled: on velocity the LiDAR teacher is weaker than the radar student, so no KD term reads
the head's regression (its velocity channels get exactly zero KD gradient; the shared BEV features still get the
stage-2 feature gradient).

Stage 3, intensity-guided fusion calibration (:func:`gate_kl`, :func:`camera_gate_target`,
:func:`radar_gate_target`): each fuser gate :math:`G_c, G_r` (``FusionOutput``, ``(B, C, H, W)`` in (0, 1)),
averaged over channels (:math:`\bar g`), learns where *its* modality deserves trust:

.. math:: Y_c = V_u\, \rho(d_u)\, D_u \quad\text{(camera: LiDAR structure inside the camera frustum, near)},
          \qquad Y_r = 1[u \in \mathcal R]\, D_u \quad\text{(radar: returns that coincide with LiDAR structure)}

with :math:`V_u = 1` where the camera's lift-splat frustum reaches the cell, :math:`d_u` the nearest frustum depth
in it and :math:`\rho(d) = \mathrm{clip}\big((d_{max} - d)/(d_{max} - d_{min}), 0, 1\big)` over the camera's
depth range (monocular depth degrades with range). The loss is a class-balanced Bernoulli KL, 0 exactly when
each gate equals its target:

.. math:: L_3 = \sum_{g \in \{c, r\}} \sum_u \Big(\frac{Y_{gu}}{\sum_v Y_{gv}}
          + \frac{1 - Y_{gu}}{\sum_v (1 - Y_{gv})}\Big)\,
          \mathrm{KL}\big(\mathrm{Bern}(Y_{gu})\,\|\,\mathrm{Bern}(\bar g_u)\big)

(a part with an empty denominator is 0). The gates act on the features as :math:`F (1 + G)` (see
:mod:`imkd_ros.model.fusion`), so what they learn here is a per-modality reliability map, not a feature scale.

**Per-cell gradient at an object cell.** ``test/distill/test_losses.py``
(``test_kd_gradient_per_object_cell_is_comparable_to_the_focal_loss``) builds a small synthetic batch at the
default size (2 frames, 64 x 64 head grid, 48 channels, 30 objects per frame, a student at initialisation) and
measures, at each object's centre cell :math:`u`, :math:`\|\partial (w L_{KD}) / \partial x_u\| \,/\,
\|\partial L_{focal} / \partial Z_u\|` with :math:`x` the KD term's own input (adapted radar map, adapted fused map,
heatmap logits, gate) and :math:`w` its default weight. Median over the 60 objects (the test requires every object
within 0.1-10):

======================  ==========================================  =================================
term                    before (sum-of-weights normalisation with a  after (this module, DistillConfig
                        0.05 background floor, weights 2/2/2/0.2)   defaults 4/4/1/2)
======================  ==========================================  =================================
stage 1 (radar)         0.015                                       0.52
stage 2 feature         0.044                                       0.28
stage 2 response        0.13                                        0.78
stage 3, radar gate     0.0002                                      0.34
stage 3, camera gate    0.001                                       0.31 (gate 0.1, objects it should see)
======================  ==========================================  =================================

On four validation frames of the synthetic set with the shipped teacher (its features, heatmaps and ground-removed
intensity, the frames' radar, the student's maps at initialisation) the medians at ground-truth object centres are
0.26 (stage 1), 0.39 (stage 2 feature) and 0.49 (response; 0 for the 12 % of objects the teacher misses), and
0.21 for the radar gate at the cells where its target is above 0.5.

:func:`distill_losses` computes the enabled ones for a student forward pass and weights them with
:class:`~imkd_ros.distill.config.DistillConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.nn import functional as F

from imkd_ros.distill.adapters import DistillHeads
from imkd_ros.distill.bank import TargetsBatch
from imkd_ros.distill.config import DistillConfig
from imkd_ros.distill.intensity import INTENSITY_NAMES, combine_intensity, head_grid
from imkd_ros.model.bev_scatter import bev_cell_index
from imkd_ros.model.config import ModelConfig
from imkd_ros.model.depth import depth_bin_centers
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.lift_splat import frustum_points
from imkd_ros.model.precision import full_precision
from imkd_ros.model.student import StudentOutput

__all__ = [
    "DistillLosses",
    "teacher_foreground",
    "teacher_object_count",
    "radar_occupancy",
    "response_cells",
    "feature_mse",
    "object_neighbourhood",
    "radar_feature_loss",
    "channel_kl",
    "heatmap_kl",
    "camera_gate_target",
    "radar_gate_target",
    "gate_kl",
    "distill_losses",
]

_EPS = 1e-6
_DENSITY = INTENSITY_NAMES.index("density")


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor, what: str) -> None:
    if student.dim() != 4 or student.shape != teacher.shape:
        raise ModelInputError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must match")
    b, _, h, w = student.shape
    if weight.shape != (b, 1, h, w):
        raise ModelInputError(f"{what}: weight must be ({b}, 1, {h}, {w}), got {tuple(weight.shape)}")


def _normalised_sum(
    per_cell: torch.Tensor, weight: torch.Tensor, normaliser: torch.Tensor | float | None
) -> torch.Tensor:
    """``sum(per_cell * weight) / normaliser`` (None: ``sum(weight)``, a weighted mean); 0 (not NaN) when the
    weights are all 0."""
    total = weight.sum()
    if float(total) <= 0:
        return per_cell.sum() * 0.0
    norm = total if normaliser is None else torch.as_tensor(normaliser, dtype=per_cell.dtype, device=per_cell.device)
    return (per_cell * weight).sum() / norm.clamp(min=_EPS)


# ------------------------------------------------------------------------------------------------ cell selection
def teacher_foreground(heatmap: torch.Tensor, threshold: float) -> torch.Tensor:
    """Cells where the teacher sees an object: ``(B, K, H, W)`` probabilities -> ``(B, 1, H, W)`` float 0/1,
    ``max_k heatmap > threshold``."""
    return (heatmap.detach().float().amax(dim=1, keepdim=True) > threshold).float()


def teacher_object_count(heatmap: torch.Tensor, threshold: float) -> torch.Tensor:
    """:math:`N_T`: the teacher's objects in the batch, the 3x3 local maxima of ``max_k heatmap`` above
    ``threshold`` (at least 1). ``(B, K, H, W)`` -> scalar float tensor."""
    m = heatmap.detach().float().amax(dim=1, keepdim=True)
    peaks = (m == F.max_pool2d(m, 3, stride=1, padding=1)) & (m > threshold)
    return peaks.sum().float().clamp(min=1.0)


def radar_occupancy(radar_intensity: torch.Tensor) -> torch.Tensor:
    """Cells with a radar return: the student's radar maps ``(B, 2, H, W)`` (``StudentOutput.radar_intensity``,
    channel 0 the point density) -> ``(B, 1, H, W)`` float 0/1."""
    return (radar_intensity.detach()[:, 0:1] > 0).float()


def response_cells(logits: torch.Tensor, teacher_prob: torch.Tensor, threshold: float) -> torch.Tensor:
    """:math:`\\mathcal C`: cells where the teacher's or the student's class maximum exceeds ``threshold``.
    ``(B, K, H, W)`` logits and probabilities -> ``(B, 1, H, W)`` float 0/1 (no gradient)."""
    teacher = teacher_prob.detach().float().amax(dim=1, keepdim=True) > threshold
    student = torch.sigmoid(logits.detach().float()).amax(dim=1, keepdim=True) > threshold
    return (teacher | student).float()


# ------------------------------------------------------------------------------------------------ stage 1
def _teacher_scale(teacher: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:math:`\\sigma^2`: the ``weight``-weighted mean of the teacher's per-cell mean square (no gradient)."""
    return _normalised_sum(teacher.pow(2).mean(dim=1, keepdim=True), weight, None).clamp(min=_EPS)


def feature_mse(
    student: torch.Tensor,
    teacher: torch.Tensor,
    weight: torch.Tensor,
    normaliser: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Weighted, teacher-scale-normalised MSE: :math:`\\sum_u w_u e_u / N` (:math:`e_u` of stage 1).

    Args:
        student: ``(B, C, H, W)`` adapted student features.
        teacher: ``(B, C, H, W)`` teacher features.
        weight: ``(B, 1, H, W)`` per-cell weight >= 0.
        normaliser: :math:`N` (None: :math:`\\sum_u w_u`, a weighted mean).

    Returns:
        scalar; 0 when the weights are all 0.
    """
    _check_pair(student, teacher, weight, "feature_mse")
    t = teacher.detach()
    w = weight.detach()
    sigma2 = _teacher_scale(t, w)
    return _normalised_sum((student - t).pow(2).mean(dim=1, keepdim=True) / sigma2, w, normaliser)


def object_neighbourhood(cells: torch.Tensor, radius: int) -> torch.Tensor:
    """The maximum of a ``(B, 1, H, W)`` map over the cells within ``radius`` cells (Chebyshev) of each cell: of the
    0/1 foreground, :math:`\\mathcal F^+`; of the intensity, :math:`I^+`. The teacher's heatmap marks an object's
    centre, while its LiDAR points and radar returns come from its faces."""
    if radius <= 0:
        return cells
    return F.max_pool2d(cells, 2 * radius + 1, stride=1, padding=radius)


def radar_feature_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    intensity: torch.Tensor,
    foreground: torch.Tensor,
    radar_occupied: torch.Tensor,
    num_objects: torch.Tensor | float,
    object_radius: int = 2,
) -> torch.Tensor:
    """Stage 1 (:math:`L_1` of the module docstring).

    Args:
        student: ``(B, C, H, W)`` the adapted radar BEV.
        teacher: ``(B, C, H, W)`` teacher features.
        intensity: ``(B, 1, H, W)`` :math:`I`.
        foreground: ``(B, 1, H, W)`` 0/1 :math:`\\mathcal F`.
        radar_occupied: ``(B, 1, H, W)`` 0/1 :math:`\\mathcal R`.
        num_objects: :math:`N_T`.
        object_radius: :math:`r_o`, cells around a foreground cell whose radar returns and intensity are the
            object's.
    """
    _check_pair(student, teacher, intensity, "radar_feature_loss")
    t = teacher.detach()
    inten = intensity.detach()
    near = object_neighbourhood(foreground, object_radius)
    on_objects = torch.maximum(foreground, radar_occupied * near)
    w_fg = object_neighbourhood(inten, object_radius) * on_objects
    background = radar_occupied * (1.0 - near)
    w_bg = inten * background
    sigma2 = _teacher_scale(t, w_fg + w_bg)
    err = (student - t).pow(2).mean(dim=1, keepdim=True) / sigma2
    return _normalised_sum(err, w_fg, num_objects) + _normalised_sum(err, w_bg, background.sum().clamp(min=1.0))


# ------------------------------------------------------------------------------------------------ stage 2
def channel_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    weight: torch.Tensor,
    temperature: float = 1.0,
    normaliser: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Stage 2 feature loss: per-cell KL between channel softmaxes, :math:`\\tau^2 \\sum_u w_u \\mathrm{KL}_u / N`
    (:math:`L_{2f}`).

    Args:
        student, teacher: ``(B, C, H, W)``.
        weight: ``(B, 1, H, W)`` >= 0.
        temperature: softmax temperature :math:`\\tau`, in units of :math:`s`, the weighted mean over cells of the
            teacher's standard deviation across channels (no gradient): the loss does not depend on the teacher's
            feature scale.
        normaliser: :math:`N` (None: :math:`\\sum_u w_u`).

    Returns:
        scalar (nats); 0 when the weights are all 0.
    """
    _check_pair(student, teacher, weight, "channel_kl")
    t = teacher.detach().float()
    w = weight.detach()
    scale = _normalised_sum(t.std(dim=1, keepdim=True), w, None).clamp(min=_EPS) * temperature
    log_p_t = F.log_softmax(t / scale, dim=1)
    log_p_s = F.log_softmax(student.float() / scale, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1, keepdim=True)
    return _normalised_sum(kl, w, normaliser) * temperature**2


def heatmap_kl(
    logits: torch.Tensor,
    teacher_prob: torch.Tensor,
    weight: torch.Tensor,
    normaliser: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Stage 2 response loss: per-class Bernoulli KL from the teacher's probability to the student's, summed over
    classes, :math:`\\sum_u w_u \\sum_k \\mathrm{KL}_{ku} / N` (:math:`L_{2r}` with :math:`w = 1[\\mathcal C]`).

    Args:
        logits: ``(B, K, H, W)`` student heatmap logits.
        teacher_prob: ``(B, K, H, W)`` teacher probabilities in [0, 1].
        weight: ``(B, 1, H, W)`` >= 0.
        normaliser: :math:`N` (None: :math:`\\sum_u w_u`).
    """
    _check_pair(logits, teacher_prob, weight, "heatmap_kl")
    p = teacher_prob.detach().float().clamp(0.0, 1.0)
    z = logits.float()
    entropy_part = torch.xlogy(p, p) + torch.xlogy(1.0 - p, 1.0 - p)
    zero = torch.zeros_like(p)
    cross = torch.where(p > 0, p * F.logsigmoid(z), zero) + torch.where(p < 1, (1.0 - p) * F.logsigmoid(-z), zero)
    kl = entropy_part - cross
    return _normalised_sum(kl.clamp(min=0.0).sum(dim=1, keepdim=True), weight.detach(), normaliser)


# ------------------------------------------------------------------------------------------------ stage 3
def camera_frustum_depth(intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, model: ModelConfig) -> torch.Tensor:
    """The nearest depth (m, along the optical axis of the camera that sees it) of the cameras' lift-splat frustum
    samples in each head cell: ``(B, N, 3, 3)`` model-input intrinsics and ``(B, N, 4, 4)`` camera -> ego ->
    ``(B, 1, out_ny, out_nx)``, ``inf`` where no frustum reaches (the samples
    :func:`imkd_ros.model.lift_splat.frustum_points` lifts, counted on the head grid, then the 3x3 minimum so that
    cells between two depth bins are not left out)."""
    grid = head_grid(model.grid)
    b = intrinsics.shape[0]
    flat_k, flat_c2e = intrinsics.flatten(0, 1).float(), cam_to_ego.flatten(0, 1).float()
    pts = frustum_points(flat_k, flat_c2e, model.image, model.camera)  # (B*N, D, fH, fW, 3)
    d = pts.shape[1]
    depth = depth_bin_centers(model.camera, pts.device).view(1, d, 1, 1).expand(pts.shape[:-1])
    index = bev_cell_index(pts.reshape(b, -1, 3), grid)  # (B, S), the N cameras of a sample together
    cells = grid.ny * grid.nx
    near = torch.full((b * cells + 1,), float("inf"), device=pts.device)
    near = near.scatter_reduce(0, index.reshape(-1), depth.reshape(-1), "amin", include_self=True)[:-1]
    # depth bins and head cells alias (1 m bins, 0.8 m cells): close the one-cell holes with a 3x3 minimum
    return -F.max_pool2d(-near.view(b, 1, grid.ny, grid.nx), 3, stride=1, padding=1)


def camera_gate_target(structure: torch.Tensor, output: StudentOutput, model: ModelConfig) -> torch.Tensor:
    """:math:`Y_c = V \\rho(d) D`: LiDAR structure ``(B, 1, H, W)`` (the cached ``density``) inside the student's
    camera frustum, fading linearly from 1 at the camera's ``depth_range[0]`` to 0 at ``depth_range[1]``.

    Raises:
        ModelInputError: the output has no camera calibration, or its head grid is not ``model``'s.
    """
    if output.intrinsics is None or output.cam_to_ego is None:
        raise ModelInputError("camera_gate_target: the student output carries no camera calibration")
    near = camera_frustum_depth(output.intrinsics, output.cam_to_ego, model).to(structure.device)
    if near.shape != structure.shape:
        raise ModelInputError(
            f"camera_gate_target: the model's head grid {tuple(near.shape[2:])} is not the maps' "
            f"{tuple(structure.shape[2:])}"
        )
    d_min, d_max = model.camera.depth_range
    trust = ((d_max - near) / (d_max - d_min)).clamp(0.0, 1.0)
    trust = torch.where(torch.isfinite(near), trust, torch.zeros_like(trust))
    return trust * structure.detach().float().clamp(0.0, 1.0)


def radar_gate_target(structure: torch.Tensor, radar_occupied: torch.Tensor) -> torch.Tensor:
    """:math:`Y_r = 1[\\mathcal R] D`: radar returns that coincide with LiDAR structure, ``(B, 1, H, W)``."""
    return radar_occupied.detach().float() * structure.detach().float().clamp(0.0, 1.0)


def gate_kl(gate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Stage 3, one gate: class-balanced Bernoulli KL from the target map to the channel-mean gate (the inner sum of
    :math:`L_3`); 0 when the gate equals the target.

    Args:
        gate: ``(B, C, H, W)`` sigmoid gate in (0, 1) (``FusionOutput.camera_gate`` / ``radar_gate``).
        target: ``(B, 1, H, W)`` in [0, 1].
    """
    b, _, h, w = gate.shape
    if gate.dim() != 4 or target.shape != (b, 1, h, w):
        raise ModelInputError(
            f"gate_kl: gate {tuple(gate.shape)} needs a target ({b}, 1, {h}, {w}), got {tuple(target.shape)}"
        )
    q = gate.float().mean(dim=1, keepdim=True).clamp(_EPS, 1.0 - _EPS)
    p = target.detach().float().clamp(0.0, 1.0)
    kl = torch.xlogy(p, p) - torch.xlogy(p, q) + torch.xlogy(1.0 - p, 1.0 - p) - torch.xlogy(1.0 - p, 1.0 - q)
    kl = kl.clamp(min=0.0)
    return _normalised_sum(kl, p, None) + _normalised_sum(kl, 1.0 - p, None)


# ------------------------------------------------------------------------------------------------ all stages
@dataclass(frozen=True)
class DistillLosses:
    """Unweighted losses of each stage (0 when off) and ``total``, the weighted sum of the enabled ones."""

    stage1: torch.Tensor
    stage2_feature: torch.Tensor
    stage2_response: torch.Tensor
    stage3: torch.Tensor
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{"kd_<name>": scalar}`` (for logging)."""
        return {f"kd_{f.name}": getattr(self, f.name) for f in fields(self)}


@full_precision
def distill_losses(
    output: StudentOutput,
    targets: TargetsBatch,
    heads: DistillHeads,
    config: DistillConfig,
    model: ModelConfig | None = None,
) -> DistillLosses:
    """The enabled distillation losses of one student forward pass.

    Args:
        output: :meth:`Student.features` of the batch (maps ``(B, C_s, H, W)``).
        targets: the batch's cached teacher targets (same order, same ``(H, W)``).
        heads: the adapters (built for ``config``).
        config: stages, weights and thresholds.
        model: the student's model config (grid, image, depth range): stage 3 places the camera frustum with it.

    Raises:
        ModelInputError: the student lacks a map a stage needs (radar BEV, fuser gates, camera calibration), stage 3
            has no ``model``, or grids differ.
    """
    b, _, h, w = output.bev.shape
    if targets.features.shape[0] != b or targets.features.shape[2:] != (h, w):
        raise ModelInputError(
            f"distill_losses: student maps are ({b}, ., {h}, {w}), teacher targets {tuple(targets.features.shape)}"
        )
    zero = output.bev.new_zeros(())
    s1 = s2f = s2r = s3 = zero
    if not config.enabled:
        return DistillLosses(s1, s2f, s2r, s3, zero)
    intensity = combine_intensity(targets.intensity, config.intensity_mix)
    foreground = teacher_foreground(targets.heatmap, config.foreground_threshold)
    num_objects = teacher_object_count(targets.heatmap, config.foreground_threshold)
    occupied = None if output.radar_intensity is None else radar_occupancy(output.radar_intensity)
    if config.has("stage1"):
        if output.radar_bev is None or occupied is None:
            raise ModelInputError("stage1 needs the student's radar BEV; the student has no radar branch")
        adapted = heads.adapt_radar(output.radar_bev)
        s1 = radar_feature_loss(
            adapted, targets.features, intensity, foreground, occupied, num_objects, config.object_radius
        )
    if config.has("stage2"):
        if config.stage2_feature_weight > 0:
            source = output.bev if config.stage2_source == "bev" else output.fused_bev
            weight = object_neighbourhood(intensity, config.object_radius) * foreground
            s2f = channel_kl(heads.adapt_fused(source), targets.features, weight, config.temperature, num_objects)
        if config.stage2_response_weight > 0:
            cells = response_cells(output.head.heatmap, targets.heatmap, config.confidence_threshold)
            s2r = heatmap_kl(output.head.heatmap, targets.heatmap, cells, num_objects)
    if config.has("stage3"):
        if output.fusion is None or occupied is None:
            raise ModelInputError("stage3 needs the fuser's gates; the student is not camera + radar")
        if model is None:
            raise ModelInputError(
                "stage3 needs the student's ModelConfig to place the camera frustum: "
                "distill_losses(..., model=student.config)"
            )
        structure = targets.intensity[:, _DENSITY : _DENSITY + 1]
        y_c = camera_gate_target(structure, output, model)
        y_r = radar_gate_target(structure, occupied)
        s3 = gate_kl(output.fusion.camera_gate, y_c) + gate_kl(output.fusion.radar_gate, y_r)
    total = (
        config.stage1_weight * s1
        + config.stage2_feature_weight * s2f
        + config.stage2_response_weight * s2r
        + config.stage3_weight * s3
    )
    return DistillLosses(s1, s2f, s2r, s3, total)
