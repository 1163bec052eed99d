"""BEV network on the head grid: residual blocks at full resolution plus a stride-2 branch, merged.

``x1 = blocks(x)``; ``x2 = down_blocks(x1)`` at half resolution and 2C channels, upsampled by a stride-2
transposed conv to C; ``out = ConvBNReLU_1x1([x1 ; up(x2)])``. ``(B, C, h, w) -> (B, C, h, w)`` (h, w even when
the stride-2 branch is on).
"""

from __future__ import annotations

import torch
from torch import nn

from imkd_ros.model.config import BEVConfig
from imkd_ros.model.layers import BasicBlock, ConvBNReLU

__all__ = ["BEVBackbone"]


class BEVBackbone(nn.Module):
    """``(B, C, h, w) -> (B, C, h, w)`` with C = ``config.channels``."""

    def __init__(self, config: BEVConfig) -> None:
        super().__init__()
        c = config.channels
        self.blocks = nn.Sequential(*[BasicBlock(c, c) for _ in range(config.blocks)])
        self.down: nn.Module | None = None
        if config.down_blocks > 0:
            layers = [BasicBlock(c, 2 * c, stride=2)] + [
                BasicBlock(2 * c, 2 * c) for _ in range(config.down_blocks - 1)
            ]
            self.down = nn.Sequential(*layers)
            self.up = nn.Sequential(
                nn.ConvTranspose2d(2 * c, c, 2, stride=2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
            )
            self.merge = ConvBNReLU(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.blocks(x)
        if self.down is None:
            return x1
        return self.merge(torch.cat([x1, self.up(self.down(x1))], dim=1))
