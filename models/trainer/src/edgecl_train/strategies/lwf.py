"""LwF, learning without forgetting (Li & Hoiem, ECCV 2016), and its class-IL form LwF.MC (Rebuffi et
al. 2017). No data are kept; after each task the model is copied as the "previous model".

- `lwf`: cross-entropy on the stream batch, plus `alpha` times the distillation loss
  T^2 * CE(softmax(old / T), softmax(new / T)) over the previous tasks' classes (`distillation_ce`,
  the knowledge-distillation form of the paper's modified cross-entropy), temperature T = 2.
- `lwf_mc`: iCaRL's loss without exemplars (`icarl.icarl_loss`): a binary cross-entropy per seen
  class, one-hot targets for the new classes and the previous model's sigmoid outputs for the old ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, Strategy, TaskData
from .icarl import icarl_loss


def distillation_ce(new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of -sum_c softmax(old/T)_c * log softmax(new/T)_c."""
    p_old = F.softmax(old_logits.float() / temperature, dim=1)
    return -(p_old * F.log_softmax(new_logits.float() / temperature, dim=1)).sum(1).mean()


@dataclass(frozen=True)
class LwFOptions(Options):
    alpha: float = 1.0  # weight of the distillation term
    temperature: float = 2.0


class _PreviousModel(Strategy):
    def __init__(self, ctx, config) -> None:
        super().__init__(ctx, config)
        self.old_model: nn.Module | None = None
        self.old_classes: list[int] = []

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        self.old_model = copy.deepcopy(self.model).eval()
        for p in self.old_model.parameters():
            p.requires_grad_(False)
        self.old_classes = list(self.seen_classes)

    def old_logits(self, x01: torch.Tensor) -> torch.Tensor | None:
        if self.old_model is None:
            return None
        with torch.no_grad():
            return self.old_model(self.ctx.adapter(x01))[1]


class LwF(_PreviousModel):
    name = "lwf"
    Options = LwFOptions

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        x01 = self.to_unit(x_u8)
        _, logits = self.forward_train(x01)
        loss = self.ce(logits, y.to(self.ctx.device))
        old = self.old_logits(x01)
        if old is not None:
            T, oc = self.config.temperature, self.old_classes
            loss = loss + self.config.alpha * T * T * distillation_ce(logits[:, oc], old[:, oc], T)
        self.step(loss)
        return float(loss.detach())


class LwFMC(_PreviousModel):
    name = "lwf_mc"
    Options = Options

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        x01 = self.to_unit(x_u8)
        _, logits = self.forward_train(x01)
        loss = icarl_loss(logits, y.to(self.ctx.device), self.seen_classes, self.old_classes, self.old_logits(x01))
        self.step(loss)
        return float(loss.detach())
