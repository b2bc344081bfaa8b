"""iCaRL (Rebuffi et al., CVPR 2017): herding exemplars, distillation, nearest-mean-of-exemplars.

Training: sigmoid outputs, one binary cross-entropy per class seen so far (`icarl_loss`). The target of
a new class is the one-hot label; the target of an old class is the previous model's sigmoid output on
that image (distillation). Each step learns from the stream batch plus `mem_batch` exemplars.
Exemplars: the memory's `herding` selector (default): at the end of each task, size // (classes seen)
per class, picked by herding over the L2-normalised features; the SCR paper's online code uses the
reservoir memory instead (`--selector reservoir`). At the end of each task the model is copied as the
"previous model". Classification: nearest mean of exemplars over L2-normalised encoder features; the
exported model is the encoder (features only: the device's NCM head classifies the same way).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..memory import Selector
from ..scenario import Task
from .base import NCMScores, ReplayOptions, StepCallback, Strategy, TaskData


def icarl_loss(logits: torch.Tensor, y: torch.Tensor, seen: list[int], old: list[int],
               old_logits: torch.Tensor | None) -> torch.Tensor:
    """Sum over the seen classes of the binary cross-entropy, mean over the batch. Targets: one-hot(y)
    for the classes in `seen` not in `old`; sigmoid(old_logits) for the classes in `old`."""
    seen_t = torch.tensor(seen, device=logits.device)
    target = (y[:, None] == seen_t[None, :]).float()
    if old and old_logits is not None:
        pos = [seen.index(c) for c in old]
        target[:, pos] = torch.sigmoid(old_logits[:, old].float())
    bce = F.binary_cross_entropy_with_logits(logits[:, seen_t].float(), target, reduction="none")
    return bce.sum(1).mean()


class ICaRL(Strategy):
    name = "icarl"
    needs_memory = True
    has_logits = False
    Options = ReplayOptions
    default_selector = Selector.HERDING

    def __init__(self, ctx, config: ReplayOptions) -> None:
        super().__init__(ctx, config)
        self.old_model: nn.Module | None = None
        self.old_classes: list[int] = []
        self.ncm = NCMScores(ctx.n_classes)

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        assert self.ctx.memory is not None
        mx, my = self.ctx.memory.sample(self.config.mem_batch)
        x = torch.cat([x_u8, mx]) if len(my) else x_u8
        yy = torch.cat([y, my]) if len(my) else y
        x01 = self.to_unit(x)
        _, logits = self.forward_train(x01)
        old_logits = None
        if self.old_model is not None:
            with torch.no_grad():
                _, old_logits = self.old_model(self.ctx.adapter(x01))
        loss = icarl_loss(logits, yy.to(self.ctx.device), self.seen_classes, self.old_classes, old_logits)
        self.step(loss)
        self.remember(x_u8, y)
        return float(loss.detach())

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        assert self.ctx.memory is not None
        self.ctx.memory.select_at_task_end(data.images, data.labels, task.index, self.features)
        self.old_model = copy.deepcopy(self.model).eval()
        for p in self.old_model.parameters():
            p.requires_grad_(False)
        self.old_classes = list(self.seen_classes)

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
