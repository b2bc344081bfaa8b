"""What the task-incremental (task-id-at-test-time) methods share: PNN, DEN, Piggyback, CPG, VCL, AGS-CL.

Each of them answers a question *for a given task*: `task_features(x, t)` is what task t's head sees
and `forward_task(x, t)` its logits over task t's own classes (in `self.task_classes[t]` order). The
run loop's class-IL evaluation asks for one score per class: `scores` fills each seen task's classes
with that task's log-softmax (so the task-IL accuracy, argmax within a task's classes, is the method's
own prediction; the class-IL figure compares log-probabilities across heads and is reported, not
claimed). Training uses the current task's classes only: the cross-entropy over the local labels.

Export is task-conditioned: `task_module(t)` is an `nn.Module` (input -> (features, logits over task
t's classes)) with the task fixed, one ONNX file per task (`edgecl_train.task_export`).

`model_size()` (called by the run loop after every task) reports what the model must store to serve
every task seen so far: the growing methods' defining cost.

`fit` runs extra epochs over a task's data inside `after_task` (DEN's expansion, CPG's retraining,
VCL's coreset), reporting each step through the run loop's callback.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, Strategy, TaskData


class TaskModule(nn.Module):
    """One task of a task-IL strategy as a plain module: normalised input -> (features, logits)."""

    def __init__(self, strategy: "TaskILStrategy", t: int) -> None:
        super().__init__()
        self.inner = strategy.model
        self.fn = strategy
        self.t = t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.fn.task_features(x, self.t, deterministic=True)
        return f, self.fn.task_head(f, self.t, deterministic=True)


def count(params: Iterable[torch.Tensor]) -> int:
    return int(sum(p.numel() for p in params))


class TaskILStrategy(Strategy):
    """Base of the task-IL methods; subclasses implement `setup_task`, `trainable`, `task_features`,
    `task_head`, `model_size` and usually `build_model`."""

    task_conditioned = True
    supports_ddp = False  # models grow or are rebuilt between tasks

    def __init__(self, ctx, config: Options) -> None:
        self.task_classes: list[tuple[int, ...]] = []
        super().__init__(ctx, config)

    # ---- sizes
    def in_features(self) -> int:
        s = self.ctx.encoder.spec
        return s.channels * s.height * s.width

    # ---- what a subclass provides
    @abc.abstractmethod
    def setup_task(self, task: Task) -> None:
        """Grow / add the task's head, column, masks... before its first step."""

    @abc.abstractmethod
    def trainable(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates during the current task."""

    @abc.abstractmethod
    def task_features(self, x: torch.Tensor, t: int, deterministic: bool = False) -> torch.Tensor:
        """What task t's head sees, for a normalised input batch."""

    @abc.abstractmethod
    def task_head(self, f: torch.Tensor, t: int, deterministic: bool = False) -> torch.Tensor:
        """Task t's logits over its own classes."""

    def model_size(self) -> dict:
        return {"parameters": count(self.model.parameters())}

    def penalty(self) -> torch.Tensor | None:
        """An extra loss term added at every training step (None: none)."""
        return None

    def after_step(self) -> None:
        """Called after every optimiser step (proximal operators, gradient masks' clean-up)."""

    # ---- shared machinery
    def make_optimizer(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if not params:  # nothing to train before the first task's head exists
            params = [nn.Parameter(torch.zeros(1))]
        return super().make_optimizer(params)

    def forward_task(self, x: torch.Tensor, t: int, deterministic: bool = False) -> torch.Tensor:
        return self.task_head(self.task_features(x, t, deterministic), t, deterministic)

    def local_labels(self, y: torch.Tensor, t: int) -> torch.Tensor:
        cls = torch.tensor(self.task_classes[t], device=y.device)
        return (y[:, None] == cls[None, :]).float().argmax(1)

    def before_task(self, task: Task) -> None:
        super().before_task(task)
        self.task_classes.append(tuple(task.classes))
        self.setup_task(task)
        self.model.to(self.ctx.device)
        self.opt = self.make_optimizer(self.trainable())

    def task_loss(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        """Cross-entropy of task t's head over its own classes (x normalised, y global labels)."""
        return F.cross_entropy(self.forward_task(x, t).float(), self.local_labels(y, t))

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        assert self.task is not None
        x = self.ctx.adapter(self.to_unit(x_u8))
        loss = self.task_loss(x, y.to(self.ctx.device), self.task.index)
        pen = self.penalty()
        if pen is not None:
            loss = loss + pen
        self.step(loss)
        self.after_step()
        return float(loss.detach())

    def fit(self, data: TaskData, t: int, epochs: int, params: list[nn.Parameter],
            on_step: StepCallback | None = None, batch_size: int = 64,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
            after: Callable[[], None] | None = None, lr: float | None = None) -> None:
        """`epochs` passes over `data` (task t) updating `params` with a fresh optimiser of the run's kind."""
        if epochs <= 0 or not params:
            return
        opt = self.make_optimizer(params)
        if lr is not None:
            for g in opt.param_groups:
                g["lr"] = lr
        loss_fn = loss_fn or (lambda x, y: self.task_loss(x, y, t))
        n = len(data.labels)
        self.model.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=self.ctx.generator)
            for s in range(0, n, batch_size):
                b = perm[s : s + batch_size]
                x = self.ctx.adapter(self.to_unit(data.images[b]))
                loss = loss_fn(x, data.labels[b].to(self.ctx.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.after_backward()
                opt.step()
                if after is not None:
                    after()
                if on_step is not None:
                    on_step(float(loss.detach()))

    @torch.no_grad()
    def task_accuracy(self, data: TaskData, t: int, limit: int = 1000) -> float:
        was = self.model.training
        self.model.eval()
        x = self.ctx.adapter(self.to_unit(data.images[:limit]))
        pred = self.forward_task(x, t, deterministic=True).argmax(1)
        self.model.train(was)
        return float((pred == self.local_labels(data.labels[:limit].to(self.ctx.device), t)).float().mean())

    @torch.no_grad()
    def scores(self, x_u8: torch.Tensor) -> torch.Tensor:
        x = self.ctx.adapter(self.to_unit(x_u8))
        out = torch.full((len(x_u8), self.ctx.n_classes), float("-inf"))
        for t, cls in enumerate(self.task_classes):
            out[:, list(cls)] = F.log_softmax(self.eval_logits(x, t).float(), 1).cpu()
        return out

    def eval_logits(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.forward_task(x, t, deterministic=True)

    def task_module(self, t: int) -> nn.Module:
        return TaskModule(self, t)

    def export_module(self) -> nn.Module:
        return self.task_module(len(self.task_classes) - 1)


class StraightThroughMask(torch.autograd.Function):
    """Piggyback's / CPG's binary mask: forward (scores > threshold) as 0/1; backward passes the
    gradient of the mask to the real-valued scores unchanged (straight-through estimator)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        return (scores > threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def binary_mask(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    if torch.jit.is_tracing() or not torch.is_grad_enabled():  # export / evaluation: a plain comparison
        return (scores > threshold).to(scores.dtype)
    return StraightThroughMask.apply(scores, threshold)


class MLPHeads(nn.Module):
    """Per-task linear heads (task t: in_dim -> |classes of t|)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList()

    def add(self, in_dim: int, n: int) -> nn.Linear:
        h = nn.Linear(in_dim, n)
        self.heads.append(h)
        return h
