r"""The three IMKD distillation losses (LiDAR teacher -> camera-radar student) and their weighting.

Notation: student map :math:`S`, teacher features :math:`T` (cached, ``(B, C_t, H, W)``), the combined intensity
:math:`I \in [0, 1]^{B \times 1 \times H \times W}` (:func:`~imkd_ros.distill.intensity.combine_intensity`), the
teacher heatmap probabilities :math:`P \in [0, 1]^{B \times K \times H \times W}`. Sums run over cells
:math:`u`; every loss is exactly 0 when the student equals the teacher and positive otherwise (where its weight is
positive), and 0 (not NaN) when all weights are 0.

Stage 1, LiDAR -> radar intensity-aware feature distillation (:func:`feature_mse`), on the radar BEV through the
stage-1 adapter :math:`A_1`:

.. math:: L_1 = \frac{\sum_u I_u \frac{1}{C_t}\sum_c \big((A_1(S_r) - T)_{cu} / \sigma\big)^2}{\sum_u I_u},
          \qquad \sigma^2 = \frac{\sum_u I_u \frac{1}{C_t} \sum_c T_{cu}^2}{\sum_u I_u}\ \text{(no gradient)}

so a cell with zero intensity contributes nothing, and the loss is 1 for an all-zero student whatever the teacher's
feature scale. (RadarDistill weights cells by LiDAR/radar occupancy; here the weight is the intensity map.)

Stage 2, LiDAR -> fused intensity-guided distillation: a relation (channel-distribution) loss, not a regression, so
the fused features keep what camera and radar add and only match how the teacher distributes activation over
channels where it matters (:func:`channel_kl`, :func:`foreground_weight`):

.. math:: L_{2f} = \tau^2 \frac{\sum_u W_u\, \mathrm{KL}\big(\mathrm{softmax}_c(T_u/\tau s)\,\|\,
          \mathrm{softmax}_c(A_2(S_f)_u/\tau s)\big)}{\sum_u W_u}, \qquad
          W_u = I_u \big(\phi + (1 - \phi) \max_k P_{ku}\big)

with the foreground floor :math:`\phi` and :math:`s` the :math:`W`-weighted mean over cells of the teacher's
standard deviation across channels (no gradient; the temperature is relative to the teacher's feature scale),
and response distillation of the heatmaps (:func:`heatmap_kl`), a per-class Bernoulli KL weighted by the
foreground term alone:

.. math:: L_{2r} = \frac{\sum_u (\phi + (1-\phi)\max_k P_{ku}) \sum_k \mathrm{KL}\big(\mathrm{Bern}(P_{ku})\,\|\,
          \mathrm{Bern}(\sigma(Z_{ku}))\big)}{\sum_u (\phi + (1-\phi)\max_k P_{ku})}

Stage 3, intensity-guided fusion (:func:`gate_kl`): the fuser's gates :math:`G_c, G_r` (``FusionOutput``,
``(B, C, H, W)`` in (0, 1)), averaged over channels, are supervised by the intensity map: camera features are
amplified (and radar returns trusted) where the LiDAR sees structure:

.. math:: L_3 = \tfrac12 \sum_{g \in \{G_c, G_r\}} \frac{1}{HW} \sum_u
          \mathrm{KL}\big(\mathrm{Bern}(I_u)\,\|\,\mathrm{Bern}(\bar g_u)\big)

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
from imkd_ros.distill.intensity import combine_intensity
from imkd_ros.model.errors import ModelInputError
from imkd_ros.model.student import StudentOutput

__all__ = [
    "DistillLosses",
    "feature_mse",
    "channel_kl",
    "heatmap_kl",
    "gate_kl",
    "foreground_weight",
    "distill_losses",
]

_EPS = 1e-6


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor, what: str) -> None:
    if student.dim() != 4 or student.shape != teacher.shape:
        raise ModelInputError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must match")
    b, _, h, w = student.shape
    if weight.shape != (b, 1, h, w):
        raise ModelInputError(f"{what}: weight must be ({b}, 1, {h}, {w}), got {tuple(weight.shape)}")


def _weighted_mean(per_cell: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    total = weight.sum()
    return (per_cell * weight).sum() / total.clamp(min=_EPS) if float(total) > 0 else per_cell.sum() * 0.0


def feature_mse(student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Stage 1: intensity-weighted, teacher-scale-normalised MSE (:math:`L_1` of the module docstring).

    Args:
        student: ``(B, C, H, W)`` adapted student features.
        teacher: ``(B, C, H, W)`` teacher features.
        weight: ``(B, 1, H, W)`` per-cell weight >= 0 (the intensity map).

    Returns:
        scalar.
    """
    _check_pair(student, teacher, weight, "feature_mse")
    t = teacher.detach()
    w = weight.detach()
    sigma2 = _weighted_mean(t.pow(2).mean(dim=1, keepdim=True), w).clamp(min=1e-6)
    return _weighted_mean((student - t).pow(2).mean(dim=1, keepdim=True), w) / sigma2


def channel_kl(
    student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Stage 2 feature loss: weighted per-cell KL between channel softmaxes (:math:`L_{2f}`).

    Args:
        student, teacher: ``(B, C, H, W)``.
        weight: ``(B, 1, H, W)`` >= 0.
        temperature: softmax temperature :math:`\\tau`, in units of :math:`s`, the weighted mean over cells of the
            teacher's standard deviation across channels (no gradient): the loss does not depend on the teacher's
            feature scale.

    Returns:
        scalar (``tau^2`` times the weighted mean KL, nats).
    """
    _check_pair(student, teacher, weight, "channel_kl")
    t = teacher.detach().float()
    w = weight.detach()
    scale = _weighted_mean(t.std(dim=1, keepdim=True), w).clamp(min=1e-6) * temperature
    log_p_t = F.log_softmax(t / scale, dim=1)
    log_p_s = F.log_softmax(student.float() / scale, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1, keepdim=True)
    return _weighted_mean(kl, w) * temperature**2


def heatmap_kl(logits: torch.Tensor, teacher_prob: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Stage 2 response loss: per-class Bernoulli KL from the teacher's probability to the student's, summed over
    classes, weighted mean over cells (:math:`L_{2r}`).

    Args:
        logits: ``(B, K, H, W)`` student heatmap logits.
        teacher_prob: ``(B, K, H, W)`` teacher probabilities in [0, 1].
        weight: ``(B, 1, H, W)`` >= 0.
    """
    _check_pair(logits, teacher_prob, weight, "heatmap_kl")
    p = teacher_prob.detach().float().clamp(0.0, 1.0)
    z = logits.float()
    entropy_part = torch.xlogy(p, p) + torch.xlogy(1.0 - p, 1.0 - p)
    zero = torch.zeros_like(p)
    cross = torch.where(p > 0, p * F.logsigmoid(z), zero) + torch.where(p < 1, (1.0 - p) * F.logsigmoid(-z), zero)
    kl = entropy_part - cross
    return _weighted_mean(kl.clamp(min=0.0).sum(dim=1, keepdim=True), weight.detach())


def gate_kl(gate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Stage 3: Bernoulli KL from the target map to the channel-mean gate, mean over cells.

    Args:
        gate: ``(B, C, H, W)`` sigmoid gate in (0, 1) (``FusionOutput.camera_gate`` / ``radar_gate``).
        target: ``(B, 1, H, W)`` in [0, 1] (the intensity map).
    """
    b, _, h, w = gate.shape
    if gate.dim() != 4 or target.shape != (b, 1, h, w):
        raise ModelInputError(
            f"gate_kl: gate {tuple(gate.shape)} needs a target ({b}, 1, {h}, {w}), got {tuple(target.shape)}"
        )
    q = gate.float().mean(dim=1, keepdim=True).clamp(_EPS, 1.0 - _EPS)
    p = target.detach().float().clamp(0.0, 1.0)
    kl = torch.xlogy(p, p) - torch.xlogy(p, q) + torch.xlogy(1.0 - p, 1.0 - p) - torch.xlogy(1.0 - p, 1.0 - q)
    return kl.clamp(min=0.0).mean()


def foreground_weight(heatmap: torch.Tensor, floor: float) -> torch.Tensor:
    """``floor + (1 - floor) * max_k heatmap``: ``(B, K, H, W)`` probabilities -> ``(B, 1, H, W)`` in
    ``[floor, 1]``."""
    return floor + (1.0 - floor) * heatmap.detach().float().amax(dim=1, keepdim=True).clamp(0.0, 1.0)


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


def distill_losses(
    output: StudentOutput, targets: TargetsBatch, heads: DistillHeads, config: DistillConfig
) -> DistillLosses:
    """The enabled distillation losses of one student forward pass.

    Args:
        output: :meth:`Student.features` of the batch (maps ``(B, C_s, H, W)``).
        targets: the batch's cached teacher targets (same order, same ``(H, W)``).
        heads: the adapters (built for ``config``).
        config: stages and weights.

    Raises:
        ModelInputError: the student lacks a map a stage needs (radar BEV, fuser gates) or grids differ.
    """
    b, _, h, w = output.bev.shape
    if targets.features.shape[0] != b or targets.features.shape[2:] != (h, w):
        raise ModelInputError(
            f"distill_losses: student maps are ({b}, ., {h}, {w}), teacher targets {tuple(targets.features.shape)}"
        )
    zero = output.bev.new_zeros(())
    intensity = combine_intensity(targets.intensity, config.intensity_mix)
    s1 = s2f = s2r = s3 = zero
    if config.has("stage1"):
        if output.radar_bev is None:
            raise ModelInputError("stage1 needs the student's radar BEV; the student has no radar branch")
        s1 = feature_mse(heads.adapt_radar(output.radar_bev), targets.features, intensity)
    if config.has("stage2"):
        fg = foreground_weight(targets.heatmap, config.foreground_floor)
        if config.stage2_feature_weight > 0:
            source = output.bev if config.stage2_source == "bev" else output.fused_bev
            s2f = channel_kl(heads.adapt_fused(source), targets.features, intensity * fg, config.temperature)
        if config.stage2_response_weight > 0:
            s2r = heatmap_kl(output.head.heatmap, targets.heatmap, fg)
    if config.has("stage3"):
        if output.fusion is None:
            raise ModelInputError("stage3 needs the fuser's gates; the student is not camera + radar")
        s3 = 0.5 * (gate_kl(output.fusion.camera_gate, intensity) + gate_kl(output.fusion.radar_gate, intensity))
    total = (
        config.stage1_weight * s1
        + config.stage2_feature_weight * s2f
        + config.stage2_response_weight * s2r
        + config.stage3_weight * s3
    )
    return DistillLosses(s1, s2f, s2r, s3, total)
