"""CenterPoint-style detection head on the head grid.

Outputs per cell: class heatmap logits (K) and 10 regression channels, in order: offset of the centre inside its
cell (dx, dy; in cells, 0-1), z (m), log size (log w, log l, log h; m), sin yaw, cos yaw, velocity (vx, vy; m/s,
ego frame). Decoding is in :mod:`imkd_ros.model.decode`, targets in :mod:`imkd_ros.model.targets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from imkd_ros.model.config import HeadConfig
from imkd_ros.model.layers import ConvBNReLU

__all__ = ["CenterHead", "HeadOutput", "REGRESSION_CHANNELS", "REGRESSION_GROUPS"]

#: Number of regression channels.
REGRESSION_CHANNELS: int = 10

#: Name -> channel slice of each regression group.
REGRESSION_GROUPS: dict[str, slice] = {
    "offset": slice(0, 2),
    "height": slice(2, 3),
    "size": slice(3, 6),
    "rotation": slice(6, 8),
    "velocity": slice(8, 10),
}


def _regression_group(name: str, doc: str) -> property:
    """A read-only :class:`HeadOutput` attribute: the channels of the group ``name`` of :data:`REGRESSION_GROUPS`."""
    return property(lambda self: self.regression[:, REGRESSION_GROUPS[name]], doc=doc)


@dataclass(frozen=True)
class HeadOutput:
    """Attributes:
    heatmap: ``(B, K, h, w)`` class heatmap logits (sigmoid gives the centre probability).
    regression: ``(B, 10, h, w)`` regression channels (see the module docstring).
    """

    heatmap: torch.Tensor
    regression: torch.Tensor

    offset = _regression_group("offset", "``(B, 2, h, w)``.")
    height = _regression_group("height", "``(B, 1, h, w)`` box-centre z (m).")
    log_size = _regression_group("size", "``(B, 3, h, w)`` log (w, l, h).")
    rotation = _regression_group("rotation", "``(B, 2, h, w)`` sin, cos yaw.")
    velocity = _regression_group("velocity", "``(B, 2, h, w)`` vx, vy (m/s).")


class CenterHead(nn.Module):
    """BEV ``(B, C, h, w)`` -> :class:`HeadOutput`. A shared 3x3 conv, then a 3x3 conv + 1x1 conv per output
    (heatmap, regression). Heatmap bias starts at ``-log((1 - 0.1) / 0.1)`` (CenterPoint)."""

    def __init__(self, channels: int, num_classes: int, config: HeadConfig) -> None:
        super().__init__()
        h = config.hidden
        self.shared = ConvBNReLU(channels, h, 3)
        self.heatmap = nn.Sequential(ConvBNReLU(h, h, 3), nn.Conv2d(h, num_classes, 1))
        self.regression = nn.Sequential(ConvBNReLU(h, h, 3), nn.Conv2d(h, REGRESSION_CHANNELS, 1))
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - 0.1) / 0.1))

    def forward(self, bev: torch.Tensor) -> HeadOutput:
        x = self.shared(bev)
        return HeadOutput(self.heatmap(x), self.regression(x))
