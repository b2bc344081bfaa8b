"""SCR's augmentations, drawn independently for every image of a batch (as kornia does in SCR's code).

RandomResizedCrop(size, scale=(0.2, 1), ratio=(3/4, 4/3)) + horizontal flip (p 0.5), done together as
one bilinear resampling; ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p 0.8
(torchvision's factor semantics, fixed order); grayscale with p 0.2. Inputs and outputs are float
images in [0, 1], NCHW, 3 channels (1-channel images get only the crop and flip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2


def _gray(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    r = torch.stack([v, q, p, p, t, v], 1).gather(1, i[:, None]).squeeze(1)
    g = torch.stack([t, v, v, q, p, p], 1).gather(1, i[:, None]).squeeze(1)
    b = torch.stack([p, p, t, v, v, q], 1).gather(1, i[:, None]).squeeze(1)
    return torch.stack([r, g, b], 1)


class SCRAugment(nn.Module):
    def __init__(self, size: tuple[int, int], config: AugmentConfig = AugmentConfig(),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size = size
        self.config = config
        self.generator = generator

    def _u(self, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=self.generator).to(device) * (hi - lo) + lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        n, dev = x.shape[0], x.device
        # Random resized crop + flip as an affine sampling grid (normalised coordinates [-1, 1]).
        area = self._u(n, *c.crop_scale, dev)
        log_r = self._u(n, math.log(c.crop_ratio[0]), math.log(c.crop_ratio[1]), dev)
        ratio = torch.exp(log_r)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (self._u(n, 0.0, 1.0, dev) * (1 - w) + w / 2) * 2 - 1
        cy = (self._u(n, 0.0, 1.0, dev) * (1 - h) + h / 2) * 2 - 1
        flip = torch.where(self._u(n, 0.0, 1.0, dev) < c.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, [n, x.shape[1], *self.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if x.shape[1] != 3:
            return x.clamp(0, 1)

        # Colour jitter with probability jitter_p.
        bj, cj, sj, hj = c.jitter
        apply = (self._u(n, 0.0, 1.0, dev) < c.jitter_p).view(n, 1, 1, 1)
        y = x * self._u(n, 1 - bj, 1 + bj, dev).view(n, 1, 1, 1)
        y = y.clamp(0, 1)
        m = _gray(y).mean(dim=(1, 2, 3), keepdim=True)
        cf = self._u(n, 1 - cj, 1 + cj, dev).view(n, 1, 1, 1)
        y = (cf * y + (1 - cf) * m).clamp(0, 1)
        sf = self._u(n, 1 - sj, 1 + sj, dev).view(n, 1, 1, 1)
        y = (sf * y + (1 - sf) * _gray(y)).clamp(0, 1)
        hsv = _rgb_to_hsv(y)
        hsv[:, 0] = (hsv[:, 0] + self._u(n, -hj, hj, dev).view(n, 1, 1)) % 1.0
        y = _hsv_to_rgb(hsv)
        x = torch.where(apply, y, x)

        # Grayscale with probability gray_p.
        g = (self._u(n, 0.0, 1.0, dev) < c.gray_p).view(n, 1, 1, 1)
        x = torch.where(g, _gray(x).expand(-1, 3, -1, -1), x)
        return x.clamp(0, 1)
