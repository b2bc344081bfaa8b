"""Supervised Contrastive Replay (Mai et al., CVPR-W 2021), following the official configuration.

Per stream batch: draw `mem_batch` (100) memory samples, concatenate them with the stream batch, make
an augmented copy of the combined batch (`SCRAugment`), pass both views through encoder + projection
head (dim -> dim -> 128, ReLU; L2-normalised), SupCon loss with temperature 0.1, one SGD step (lr 0.1).
Nothing is learned from the very first batch (the memory is still empty), as in the official code.
Then the stream batch goes to the reservoir memory. Review trick: after each task, one pass over the
memory in batches of `mem_batch` with the same loss and the gradients scaled by 1/10.
Prediction: nearest class mean over the ENCODER's L2-normalised features of the memory samples
(the projection head is used only in training and is not exported).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import AUGMENTS
from ..losses import supcon_loss
from ..scenario import Task
from .base import Context, NCMScores, ReplayOptions, Strategy, StepCallback, TaskData


@dataclass(frozen=True)
class SCROptions(ReplayOptions):
    mem_batch: int = 100
    temperature: float = 0.1  # SupCon
    proj_dim: int = 128  # projection head output
    review: bool = True  # one more pass over the memory after each task
    review_grad_scale: float = 0.1
    augment: str = "torchvision"  # "torchvision" | "kornia041" (augment.py: kornia 0.4.1's semantics)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {sorted(AUGMENTS)}, got {self.augment!r}")


class SupConModel(nn.Module):
    def __init__(self, encoder: nn.Module, proj_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        return f, F.normalize(self.head(f), dim=1)


class SCR(Strategy):
    name = "scr"
    needs_memory = True
    has_logits = False
    Options = SCROptions

    def __init__(self, ctx: Context, config: SCROptions) -> None:
        super().__init__(ctx, config)
        self.augment = AUGMENTS[config.augment](ctx.image_size, generator=ctx.generator)
        self.ncm = NCMScores(ctx.n_classes)

    def build_model(self) -> nn.Module:
        return SupConModel(self.ctx.encoder, self.config.proj_dim)

    def _loss(self, x_u8: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.to_unit(x_u8)
        (_, z1), (_, z2) = self.forward_views([x, self.augment(x)])
        return supcon_loss(torch.stack([z1, z2], 1), y.to(self.ctx.device), self.config.temperature)

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        self.model.train()
        assert self.ctx.memory is not None
        mx, my = self.ctx.memory.sample(self.config.mem_batch)
        loss_value = None
        if len(my):
            loss = self._loss(torch.cat([mx, x_u8]), torch.cat([my, y]))
            self.step(loss)
            loss_value = float(loss.detach())
        self.remember(x_u8, y)
        return loss_value

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        if not self.config.review:
            return
        assert self.ctx.memory is not None
        self.model.train()
        mx, my = self.ctx.memory.all()
        b = self.config.mem_batch
        perm = torch.randperm(len(my), generator=self.ctx.generator)
        n_steps = len(perm) // b  # drop_last, as the official review loader
        if self.ctx.ddp:  # every rank must take the same number of steps (its memory may differ)
            import torch.distributed as dist

            t = torch.tensor([n_steps], device=self.ctx.device)
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
            n_steps = int(t)
        for s in range(0, n_steps * b, b):
            idx = perm[s : s + b]
            loss = self._loss(mx[idx], my[idx])
            self.step(loss, grad_scale=self.config.review_grad_scale)
            if on_step is not None:
                on_step(float(loss.detach()))

    @torch.no_grad()
    def prepare_eval(self) -> None:
        self.model.eval()
        assert self.ctx.memory is not None
        mx, my = self.ctx.memory.all()
        self.ncm.fit(self.features(mx), my)

    @torch.no_grad()
    def scores(self, x_u8: torch.Tensor) -> torch.Tensor:
        return self.ncm.scores(self.features(x_u8))

    def export_module(self) -> nn.Module:
        return self.model.encoder
