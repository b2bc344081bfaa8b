"""EWC (Kirkpatrick et al., PNAS 2017) and online EWC (Schwarz et al. 2018; EWC++, Chaudhry et al. 2018).

After each task, the diagonal Fisher information of the parameters is estimated on the task's training
data (`diagonal_fisher`: the mean over `fisher_samples` samples of the squared gradient of the
cross-entropy with the sample's label, one sample at a time, the model in eval mode), and the
parameters are stored as anchors. While learning later tasks the loss gets the penalty
    lam / 2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2      (`ewc_penalty`)
- `ewc`: one (Fisher, anchor) pair per earlier task;
- `online_ewc`: one running pair: F <- gamma F + F_new, anchor <- the parameters after the latest task
  (EWC++ additionally updates F during the task with a moving average; here it is updated once per task,
  as in online EWC).
No data are kept (no memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, Strategy, TaskData


def diagonal_fisher(forward: Callable[[torch.Tensor], torch.Tensor], params: list[nn.Parameter],
                    xs: torch.Tensor, ys: torch.Tensor) -> list[torch.Tensor]:
    """Mean over the samples of (d CE(forward(x_i), y_i) / d theta)^2, one sample at a time."""
    fisher = [torch.zeros_like(p) for p in params]
    for i in range(len(ys)):
        loss = F.cross_entropy(forward(xs[i : i + 1]).float(), ys[i : i + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for f, g in zip(fisher, grads):
            if g is not None:
                f += g.detach() ** 2
    return [f / max(1, len(ys)) for f in fisher]


def ewc_penalty(params: Iterable[torch.Tensor], anchors: list[list[torch.Tensor]],
                fishers: list[list[torch.Tensor]], lam: float) -> torch.Tensor:
    params = list(params)
    total = torch.zeros((), device=params[0].device)
    for anchor, fisher in zip(anchors, fishers):
        for p, a, f in zip(params, anchor, fisher):
            total = total + (f * (p - a) ** 2).sum()
    return 0.5 * lam * total


@dataclass(frozen=True)
class EWCOptions(Options):
    lam: float = 5000.0  # penalty strength (van de Ven et al.'s Split MNIST setting)
    fisher_samples: int = 500  # training samples of the task used for the Fisher estimate


@dataclass(frozen=True)
class OnlineEWCOptions(EWCOptions):
    gamma: float = 1.0  # decay of the running Fisher


class EWC(Strategy):
    name = "ewc"
    Options = EWCOptions

    def __init__(self, ctx, config: EWCOptions) -> None:
        super().__init__(ctx, config)
        self.anchors: list[list[torch.Tensor]] = []
        self.fishers: list[list[torch.Tensor]] = []

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        _, logits = self.forward_train(self.to_unit(x_u8))
        loss = self.ce(logits, y.to(self.ctx.device))
        if self.anchors:
            loss = loss + ewc_penalty(self.parameters(), self.anchors, self.fishers, self.config.lam)
        self.step(loss)
        return float(loss.detach())

    def task_fisher(self, data: TaskData) -> list[torch.Tensor]:
        n = min(self.config.fisher_samples, len(data.labels))
        idx = torch.randperm(len(data.labels), generator=self.ctx.generator)[:n]
        was = self.model.training
        self.model.eval()
        x = self.to_unit(data.images[idx])
        y = data.labels[idx].to(self.ctx.device)
        y1 = y[:1]  # every sample is from this task: one task mask fits all (multi-head training)
        fisher = diagonal_fisher(lambda b: self.mask_to_task(self.model(self.ctx.adapter(b))[1], y1.expand(len(b))),
                                 self.parameters(), x, y)
        self.model.train(was)
        return fisher

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        self.fishers.append(self.task_fisher(data))
        self.anchors.append([p.detach().clone() for p in self.parameters()])


class OnlineEWC(EWC):
    name = "online_ewc"
    Options = OnlineEWCOptions

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        new = self.task_fisher(data)
        if self.fishers:
            new = [self.config.gamma * f + n for f, n in zip(self.fishers[0], new)]
        self.fishers = [new]
        self.anchors = [[p.detach().clone() for p in self.parameters()]]
