"""Small building blocks shared by the networks: conv-BN-ReLU, the ResNet basic block, squeeze-excitation.

All are plain ``nn.Module`` compositions of exportable ops (Conv2d, BatchNorm2d, ReLU, mean, sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "BasicBlock", "SqueezeExcite"]


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution (no bias) -> BatchNorm2d -> ReLU. ``(B, C_in, H, W) -> (B, C_out, H/s, W/s)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity (or 1x1 projection) shortcut, ReLU.

    ``(B, C_in, H, W) -> (B, C_out, H/stride, W/stride)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(c_in, c_out, 3, stride)
        self.conv2 = ConvBNReLU(c_out, c_out, 3, 1, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = ConvBNReLU(c_in, c_out, 1, stride, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Channel gate from global context: ``x * sigmoid(W2 relu(W1 mean_hw(x)))``. ``(B, C, H, W) -> same``."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(g))))
