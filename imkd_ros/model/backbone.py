"""Image backbone (ResNet-style, written here: no pretrained downloads) and its stride-16 neck.

``ImageBackbone``: stem of two stride-2 3x3 convolutions (stride 4), then four stages of
:class:`~imkd_ros.model.layers.BasicBlock` at strides 4, 8, 16, 32; or, with ``CameraConfig.trunk == "resnet50"``
(the paper's setting), :class:`~imkd_ros.model.resnet.ResNet50Trunk`, which can start from ImageNet weights. The
neck (FPN-lite) adds the upsampled stride-32 map to the stride-16 map and smooths the sum, giving the single map
that the depth net lifts.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from imkd_ros.model.config import CameraConfig
from imkd_ros.model.layers import BasicBlock, ConvBNReLU
from imkd_ros.model.resnet import ResNet50Trunk

__all__ = ["ImageBackbone"]


class ImageBackbone(nn.Module):
    """Normalised image ``(B, 3, H, W)`` -> features ``(B, neck_channels, H/16, W/16)``.

    H and W must be multiples of 32 for the stride-32 stage to line up; :class:`ImageConfig` asks for multiples of
    16, so a height of e.g. 16*odd is handled by resizing the stride-32 map to the stride-16 map's size.
    """

    def __init__(self, config: CameraConfig) -> None:
        super().__init__()
        self.trunk: ResNet50Trunk | None = ResNet50Trunk() if config.trunk == "resnet50" else None
        if self.trunk is None:
            c0 = config.stem_channels
            self.stem = nn.Sequential(ConvBNReLU(3, c0, 3, 2), ConvBNReLU(c0, c0, 3, 2))
            stages = []
            c_in = c0
            for i, (c, n) in enumerate(zip(config.stage_channels, config.stage_blocks, strict=True)):
                blocks = [BasicBlock(c_in, c, stride=1 if i == 0 else 2)]
                blocks += [BasicBlock(c, c) for _ in range(n - 1)]
                stages.append(nn.Sequential(*blocks))
                c_in = c
            self.stages = nn.ModuleList(stages)
        c16, c32 = config.stage_channels[2], config.stage_channels[3]
        self.lateral16 = ConvBNReLU(c16, config.neck_channels, 1, relu=False)
        self.lateral32 = ConvBNReLU(c32, config.neck_channels, 1, relu=False)
        self.smooth = ConvBNReLU(config.neck_channels, config.neck_channels, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            feats = self.trunk(images)
        else:
            x = self.stem(images)
            feats = []
            for stage in self.stages:
                x = stage(x)
                feats.append(x)
        f16, f32 = feats[2], feats[3]
        up = F.interpolate(self.lateral32(f32), size=f16.shape[-2:], mode="nearest")
        return self.smooth(self.lateral16(f16) + up)
