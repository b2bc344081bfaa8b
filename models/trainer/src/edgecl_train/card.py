"""The model card (models/CARD.md): the JSON file beside every exported ONNX backbone.

The device (`src/card.rs`) reads it, checks the ONNX file's sha256 against it and replays the
reference pairs. `reference_input` is the `xorshift32` generator both sides share.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CARD_FORMAT = "edgecl-model-card/1"
REFERENCE_SEEDS = (1, 2, 3)
REFERENCE_ATOL = 1e-4


def reference_input(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The card's reference input: `shape` filled row-major by xorshift32 from `seed`.

    value = (x >> 8) * 2^-23 - 1.0, exactly representable in f32, uniform in [-1, 1).
    """
    if not 0 < seed < 2**32:
        raise ValueError(f"xorshift32 seed must be a non-zero u32, got {seed}")
    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.uint32)
    x = seed
    mask = 0xFFFFFFFF
    for i in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 17
        x ^= (x << 5) & mask
        out[i] = x
    values = (out >> 8).astype(np.float64) * 2.0**-23 - 1.0
    return values.astype(np.float32).reshape(shape)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """How a raw image becomes the ONNX input (CARD.md, `input`)."""

    height: int
    width: int
    channel_order: str = "RGB"  # RGB, BGR or GRAY
    pixel_scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: str = "stretch"  # stretch | shorter_side_crop
    resize_shorter: int | None = None
    name: str = "input"
    layout: str = "NCHW"

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "GRAY" else 3

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "layout": self.layout,
            "channel_order": self.channel_order,
            "height": self.height,
            "width": self.width,
            "pixel_scale": self.pixel_scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
        }
        if self.resize_shorter is not None:
            d["resize_shorter"] = self.resize_shorter
        return d


@dataclass
class Card:
    name: str
    onnx: str
    sha256: str
    input: InputSpec
    features_dim: int
    logits_classes: int | None
    provenance: str
    recipe: dict[str, Any]
    reference_features: list[list[float]]
    classes: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] = field(default_factory=dict)
    features_output: str = "features"
    logits_output: str = "logits"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": CARD_FORMAT,
            "name": self.name,
            "onnx": self.onnx,
            "sha256": self.sha256,
            "input": self.input.to_json(),
            "features": {"output": self.features_output, "dim": self.features_dim},
            "logits": (
                {"output": self.logits_output, "classes": self.logits_classes}
                if self.logits_classes is not None
                else None
            ),
            "classes": list(self.classes),
            "provenance": self.provenance,
            "recipe": self.recipe,
            "accuracy": self.accuracy,
            "reference": {
                "generator": "xorshift32",
                "seeds": list(REFERENCE_SEEDS),
                "atol": REFERENCE_ATOL,
                "features": self.reference_features,
            },
        }
        d.update(self.extra)
        return d

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def input_spec_from_json(d: dict[str, Any]) -> InputSpec:
    return InputSpec(
        height=d["height"],
        width=d["width"],
        channel_order=d["channel_order"],
        pixel_scale=d["pixel_scale"],
        mean=tuple(d["mean"]),
        std=tuple(d["std"]),
        resize=d["resize"],
        resize_shorter=d.get("resize_shorter"),
        name=d.get("name", "input"),
        layout=d.get("layout", "NCHW"),
    )


__all__ = [
    "CARD_FORMAT",
    "Card",
    "InputSpec",
    "REFERENCE_ATOL",
    "REFERENCE_SEEDS",
    "input_spec_from_json",
    "reference_input",
    "sha256_file",
]
