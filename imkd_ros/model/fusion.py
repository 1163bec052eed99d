r"""Intensity-guided camera-radar fusion (IMKD's third stage, as architecture).

Inputs on the head grid: camera BEV :math:`F_c`, radar BEV :math:`F_r` (both ``(B, C, h, w)``) and the radar
intensity maps :math:`I_r` ``(B, 2, h, w)`` (log point density, mean RCS; see :mod:`imkd_ros.model.pillars`).

.. math::

    G_c &= \sigma\big(W_{c,2} * \mathrm{ReLU}(W_{c,1} \circledast [F_r ; I_r])\big)
        &&\text{radar calibrates camera: where radar returns (and how strong) gate camera channels}\\
    G_r &= \sigma\big(W_{r,2} * \mathrm{ReLU}(W_{r,1} \circledast F_c)\big)
        &&\text{camera calibrates radar: image context decides which returns to trust}\\
    \hat F_c &= F_c \odot (1 + G_c), \qquad \hat F_r = F_r \odot (1 + G_r)\\
    [\alpha_c, \alpha_r] &= \mathrm{softmax}_{m}\big(W_a * [\hat F_c ; \hat F_r ; I_r]\big)
        &&\text{per-cell modality weights, } (B, 2, h, w)\\
    F &= \mathrm{ReLU}\big(\mathrm{BN}(W_f * [\alpha_c \hat F_c ; \alpha_r \hat F_r])\big)\\
    F_{fused} &= F \odot \sigma\big(W_2\, \mathrm{ReLU}(W_1\, \mathrm{GAP}(F))\big)
        &&\text{channel calibration (squeeze-excitation)}

:math:`\circledast` is a 3x3 convolution to ``C / 4`` channels, :math:`*` a 1x1 convolution; the residual
``1 + G`` form lets a gate only amplify, so an untrained fuser passes both modalities through.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.model.layers import ConvBNReLU, SqueezeExcite

__all__ = ["IntensityGuidedFusion", "FusionOutput"]


@dataclass(frozen=True)
class FusionOutput:
    """Attributes:
    fused: ``(B, C, h, w)`` fused BEV.
    camera_gate: ``(B, C, h, w)`` :math:`G_c`; radar_gate: ``(B, C, h, w)`` :math:`G_r`.
    modality_weights: ``(B, 2, h, w)`` :math:`[\\alpha_c, \\alpha_r]`.
    """

    fused: torch.Tensor
    camera_gate: torch.Tensor
    radar_gate: torch.Tensor
    modality_weights: torch.Tensor


class IntensityGuidedFusion(nn.Module):
    """Camera BEV ``(B, C, h, w)``, radar BEV ``(B, C, h, w)``, radar intensity ``(B, I, h, w)`` ->
    :class:`FusionOutput`. Equations in the module docstring."""

    def __init__(self, channels: int, intensity_channels: int = 2) -> None:
        super().__init__()
        c = channels
        hidden = max(c // 4, 4)
        self.radar_to_camera = nn.Sequential(ConvBNReLU(c + intensity_channels, hidden, 3), nn.Conv2d(hidden, c, 1))
        self.camera_to_radar = nn.Sequential(ConvBNReLU(c, hidden, 3), nn.Conv2d(hidden, c, 1))
        self.modality = nn.Conv2d(2 * c + intensity_channels, 2, 1)
        self.fuse = ConvBNReLU(2 * c, c, 1)
        self.channel_gate = SqueezeExcite(c)

    def forward(self, camera: torch.Tensor, radar: torch.Tensor, intensity: torch.Tensor) -> FusionOutput:
        g_c = torch.sigmoid(self.radar_to_camera(torch.cat([radar, intensity], dim=1)))
        g_r = torch.sigmoid(self.camera_to_radar(camera))
        cam = camera * (1.0 + g_c)
        rad = radar * (1.0 + g_r)
        weights = torch.softmax(self.modality(torch.cat([cam, rad, intensity], dim=1)), dim=1)
        fused = self.fuse(torch.cat([cam * weights[:, 0:1], rad * weights[:, 1:2]], dim=1))
        return FusionOutput(self.channel_gate(fused), g_c, g_r, weights)
