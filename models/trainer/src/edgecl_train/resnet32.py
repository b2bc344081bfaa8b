"""ResNet-32 for 32x32 images (He et al. 2016, CIFAR variant), the backbone of ABD's official code.

GT-RIPL/AlwaysBeDreaming-DFCIL `models/resnet.py` (after Yerlan Idelbayev's implementation): a 3x3 stem
with 16 channels, three stages of five BasicBlocks at 16 / 32 / 64 channels (strides 1, 2, 2), option-A
shortcuts (identity; when the shape changes, the input is subsampled by 2 and zero-padded with
planes // 4 channels on each side), global average pooling to a 64-d feature, Kaiming-normal weights.
0.46 M parameters with a 100-class head.

DER's channel masks (`strategies/der.py`): a block whose `inner_mask` is set to a module multiplies its
inner channels (after conv1 + bn1, before the ReLU) by what that module returns; `Block(inner=k)` builds
a block pruned to k inner channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from .card import InputSpec


class ShortcutA(nn.Module):
    """Option A: x[:, :, ::2, ::2] padded with `pad` zero channels on each side."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class Block(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, inner: int | None = None) -> None:
        super().__init__()
        inner = planes if inner is None else inner
        self.conv1 = nn.Conv2d(cin, inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = ShortcutA(planes // 4)
        # a module returning a per-channel multiplier for the inner channels (DER's mask); None = no mask
        self.inner_mask: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(x))
        if self.inner_mask is not None:
            out = out * self.inner_mask()[None, :, None, None]
        out = self.bn2(self.conv2(F.relu(out)))
        return F.relu(out + self.shortcut(x))


class ResNet32Encoder(nn.Module):
    def __init__(self, in_channels: int, spec: InputSpec, blocks: int = 5) -> None:
        super().__init__()
        self.spec = spec
        self.dim = 64
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, planes in enumerate((16, 32, 64)):
            stage = []
            for j in range(blocks):
                stage.append(Block(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init.kaiming_normal_(m.weight)

    def blocks(self) -> list[Block]:
        return [b for layer in (self.layer1, self.layer2, self.layer3) for b in layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


# The official code's input normalisation (dataloaders/utils.py, CIFAR-100's statistics); the generator
# of ABD produces images in this normalised space.
CIFAR100_MEAN = (0.5070751592371323, 0.48654887331495095, 0.4409178433670343)
CIFAR100_STD = (0.2673342858792409, 0.25643846291708816, 0.2761504713256834)
