"""SCR's augmentations, drawn independently for every image of a batch (as kornia does in SCR's code).

`SCRAugment` (the default, `augment="torchvision"`): RandomResizedCrop(size, scale=(0.2, 1),
ratio=(3/4, 4/3)) + horizontal flip (p 0.5), done together as one bilinear resampling with continuous
crop sizes; ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p 0.8 (torchvision's
factor semantics, fixed order); grayscale with p 0.2.

`Kornia041Augment` (`augment="kornia041"`): the same pipeline with kornia 0.4.1's semantics, which SCR's
official code ran: the crop size is drawn as INTEGER width/height (int(sqrt(area * ratio))), up to 10
candidates, the first strictly smaller than the image in both sides (the full image only as fallback),
at an integer offset, then resampled to the image size (corner pixel centres onto corner pixel
centres); ColorJitter with ADDITIVE brightness (x + U(-0.4, 0.4)), MULTIPLICATIVE contrast (x * U(0.6,
1.4), no mean), saturation and hue in HSV, the four in one random order per batch.

Inputs and outputs are float images in [0, 1], NCHW, 3 channels (1-channel images get only the crop and
flip).
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


class Kornia041Augment(SCRAugment):
    """SCR's pipeline with kornia 0.4.1's crop and colour-jitter semantics (see the module docs)."""

    def _crop_boxes(self, n: int, height: int, width: int) -> torch.Tensor:
        """[n, 4] integer (x0, y0, w, h) per image."""
        c = self.config
        out = torch.zeros(n, 4)
        for i in range(n):
            area = torch.rand(10, generator=self.generator) * (c.crop_scale[1] - c.crop_scale[0]) + c.crop_scale[0]
            area = area * height * width
            lr = torch.rand(10, generator=self.generator) * (math.log(c.crop_ratio[1]) - math.log(c.crop_ratio[0])) \
                + math.log(c.crop_ratio[0])
            w = torch.sqrt(area * torch.exp(lr)).int()
            h = torch.sqrt(area / torch.exp(lr)).int()
            ok = (w > 0) & (w < width) & (h > 0) & (h < height)
            if bool(ok.any()):
                k = int(ok.int().argmax())
                wi, hi = int(w[k]), int(h[k])
            else:
                wi, hi = width, height
            x0 = int(torch.randint(0, width - wi + 1, (1,), generator=self.generator))
            y0 = int(torch.randint(0, height - hi + 1, (1,), generator=self.generator))
            out[i] = torch.tensor([x0, y0, wi, hi], dtype=torch.float32)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        n, dev = x.shape[0], x.device
        H, W = x.shape[-2:]
        oh, ow = self.size
        b = self._crop_boxes(n, H, W).to(dev)
        x0, y0, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        flip = torch.where(self._u(n, 0.0, 1.0, dev) < c.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=dev)
        # output pixel j (0..ow-1) samples input x0 + j (w-1)/(ow-1): align_corners=True coordinates
        theta[:, 0, 0] = (w - 1) / (W - 1) * flip
        theta[:, 0, 2] = (2 * x0 + w - 1) / (W - 1) - 1
        theta[:, 1, 1] = (h - 1) / (H - 1)
        theta[:, 1, 2] = (2 * y0 + h - 1) / (H - 1) - 1
        grid = F.affine_grid(theta, [n, x.shape[1], oh, ow], align_corners=True)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        if x.shape[1] != 3:
            return x.clamp(0, 1)

        bj, cj, sj, hj = c.jitter
        apply = (self._u(n, 0.0, 1.0, dev) < c.jitter_p).view(n, 1, 1, 1)
        bf = self._u(n, -bj, bj, dev).view(n, 1, 1, 1)  # kornia: brightness_factor - 1, added
        cf = self._u(n, max(0.0, 1 - cj), 1 + cj, dev).view(n, 1, 1, 1)
        sf = self._u(n, max(0.0, 1 - sj), 1 + sj, dev).view(n, 1, 1, 1)
        hf = self._u(n, -hj, hj, dev).view(n, 1, 1)
        order = torch.randperm(4, generator=self.generator).tolist()
        y = x
        for op in order:
            if op == 0:
                y = (y + bf).clamp(0, 1)
            elif op == 1:
                y = (y * cf).clamp(0, 1)
            elif op == 2:
                hsv = _rgb_to_hsv(y)
                hsv[:, 1] = (hsv[:, 1] * sf[:, 0]).clamp(0, 1)
                y = _hsv_to_rgb(hsv)
            else:
                hsv = _rgb_to_hsv(y)
                hsv[:, 0] = (hsv[:, 0] + hf) % 1.0
                y = _hsv_to_rgb(hsv)
        x = torch.where(apply, y, x)
        g = (self._u(n, 0.0, 1.0, dev) < c.gray_p).view(n, 1, 1, 1)
        x = torch.where(g, _gray(x).expand(-1, 3, -1, -1), x)
        return x.clamp(0, 1)


AUGMENTS = {"torchvision": SCRAugment, "kornia041": Kornia041Augment}
