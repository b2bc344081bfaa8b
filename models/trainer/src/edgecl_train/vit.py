"""A small vision transformer for 32x32 images (patches of 4: 64 tokens + a class token), with either
standard multi-head self-attention or LVT's inter-task attention (`ExternalKeyAttention`).

- `ViTEncoder(attention="self")`: pre-norm transformer blocks (attention, then an MLP of `mlp_ratio`
  times the width, GELU), learned position embeddings, the class token's final (layer-normed) state
  as the feature vector (`dim` = width). The plain ViT the LVT paper compares with.
- `ViTEncoder(attention="external")`: the same, with every block's attention replaced by
  `ExternalKeyAttention`: queries and values are projected from the tokens, but the keys are a learnable
  matrix K_W (one key per token position and head), shared by all images: token i attends to token j
  by the similarity of its query with position j's learned key (no key projection of the input: fewer
  parameters than self-attention). LVT carries K_W over from the previous task's model and holds the
  keys earlier tasks attended to (strategies/lvt.py).

Sizes are set by the caller; the default (width 64, depth 4, 4 heads, MLP 128: about 0.14 M
parameters) is what fits the project's 2-core CPU budget; the paper's model has about 8.9 M.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .card import InputSpec


def external_attention(q: torch.Tensor, keys: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q, v: [B, H, N, d] (projections of the tokens); keys: [H, N, d] (learned, one per token position).
    Returns (out [B, H, N, d], attention [B, H, N, N]) with attention = softmax(q K^T / sqrt(d)) over the
    N keys and out = attention v: token i takes token j's value in proportion to how well its query
    matches the learned key of position j."""
    att = torch.softmax(torch.einsum("bhnd,hmd->bhnm", q, keys) / math.sqrt(q.shape[-1]), dim=-1)
    return att @ v, att


class ExternalKeyAttention(nn.Module):
    def __init__(self, dim: int, heads: int, n_tokens: int) -> None:
        super().__init__()
        self.heads = heads
        dh = dim // heads
        self.qv = nn.Linear(dim, 2 * dim)
        self.keys = nn.Parameter(torch.randn(heads, n_tokens, dh) * dh**-0.5)
        self.out = nn.Linear(dim, dim)
        self.last_attention: torch.Tensor | None = None  # [B, H, N, N] of the last forward (importance)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, v = self.qv(x).view(b, n, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o, att = external_attention(q, self.keys, v)
        self.last_attention = att
        return self.out(o.transpose(1, 2).reshape(b, n, d))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int, attention: str, n_tokens: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ExternalKeyAttention(dim, heads, n_tokens) if attention == "external" else SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    def __init__(self, spec: InputSpec, *, width: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: int = 2,
                 patch: int = 4, attention: str = "self") -> None:
        super().__init__()
        if attention not in ("self", "external"):
            raise ValueError(f"attention must be self or external, got {attention!r}")
        if spec.height % patch or spec.width % patch:
            raise ValueError(f"image {spec.height}x{spec.width} is not a whole number of {patch}x{patch} patches")
        self.spec = spec
        self.dim = width
        self.attention = attention
        n = (spec.height // patch) * (spec.width // patch)
        self.patch = nn.Conv2d(spec.channels, width, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        self.blocks = nn.ModuleList([Block(width, heads, width * mlp_ratio, attention, n + 1) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos  # t.shape: a dynamic batch in ONNX
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t[:, 0])

    def external(self) -> list[ExternalKeyAttention]:
        return [b.attn for b in self.blocks if isinstance(b.attn, ExternalKeyAttention)]
