"""ResNet-50 image trunk with torchvision's layout, for the paper's setting (``imkd train --size paper``), and the
loading of ImageNet weights from a torchvision-format state_dict file the user provides (never downloaded).

The module tree and parameter names are torchvision's ``resnet50`` without ``avgpool``/``fc`` (``conv1``, ``bn1``,
``layer1``-``layer4`` of bottleneck blocks ``conv1/bn1/conv2/bn2/conv3/bn3`` and ``downsample.0/1``; the stride on
the 3x3 convolution, "ResNet v1.5"), so ``resnet50-*.pth`` / ``ResNet50_Weights.IMAGENET1K_*`` state_dicts load as
they are: 23,508,032 parameters, 318 state entries (320 with ``fc``). Written here from the architecture
(He et al., 2016); no torchvision import.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from imkd_ros.model.errors import ModelConfigError

__all__ = ["Bottleneck", "ResNet50Trunk", "load_imagenet_weights", "RESNET50_CHANNELS", "RESNET50_BLOCKS"]

#: Output channels and blocks of the four stages (strides 4, 8, 16, 32).
RESNET50_CHANNELS: tuple[int, int, int, int] = (256, 512, 1024, 2048)
RESNET50_BLOCKS: tuple[int, int, int, int] = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """1x1 (width) -> 3x3 (width, stride) -> 1x1 (4 x width), BN after each, identity or 1x1-projection shortcut."""

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50Trunk(nn.Module):
    """Normalised image ``(B, 3, H, W)`` -> the four stage outputs at strides 4, 8, 16, 32
    (:data:`RESNET50_CHANNELS` channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for i, (c_out, n) in enumerate(zip(RESNET50_CHANNELS, RESNET50_BLOCKS, strict=True)):
            width = c_out // 4
            blocks = [Bottleneck(c_in, width, stride=1 if i == 0 else 2)]
            blocks += [Bottleneck(c_out, width) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c_out

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


def load_imagenet_weights(trunk: ResNet50Trunk, path: str | Path) -> int:
    """Load a torchvision-format ResNet-50 state_dict file (``torch.save(model.state_dict())``, optionally under a
    ``"state_dict"`` key, ``module.`` prefixes of DataParallel stripped; ``fc.*`` ignored) into ``trunk`` with
    ``weights_only=True``. Returns the number of tensors loaded.

    Raises:
        FileNotFoundError: no such file.
        ModelConfigError: not a ResNet-50 state_dict: the missing, unexpected or wrongly shaped entries named.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights {path} do not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ModelConfigError(f"ImageNet weights {path}: expected a state_dict (name -> tensor), got {type(data)}")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if k in state and
              tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"shapes differ: {shapes[:3]}" if shapes else ""]  # fmt: skip
        raise ModelConfigError(
            f"ImageNet weights {path} are not a torchvision ResNet-50 state_dict: {'; '.join(p for p in parts if p)}"
        )
    trunk.load_state_dict(state, strict=True)
    return len(state)
