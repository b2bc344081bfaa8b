"""The interface every continual-learning strategy implements, and what they share.

A strategy owns its trainable model (encoder + whatever heads it needs) and optimiser. The run loop
(`edgecl_train.train`) calls, per task: `before_task`, `observe` for each stream batch, `after_task`;
then `prepare_eval` and `predict` to fill the accuracy matrix; finally `export_module` for ONNX.
Strategies never print or draw progress: they report through the `on_step` callback they are given.
Adding a method (ABD, DER, EWC, A-GEM, LwF, ...) = one new file with one `Strategy` subclass,
registered in `strategies/__init__.py`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import InputAdapter
from ..memory import ReplayMemory
from ..scenario import Task

StepCallback = Callable[[float], None]


@dataclass(frozen=True)
class StrategyConfig:
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    mem_batch: int = 10  # memory samples replayed with every stream batch
    temperature: float = 0.1  # SupCon
    proj_dim: int = 128  # SupCon projection head output
    review: bool = False  # SCR's review trick: one more pass over the memory after each task
    review_grad_scale: float = 0.1


@dataclass
class Context:
    """What the run loop hands a strategy."""

    encoder: nn.Module  # has .dim and .spec
    adapter: InputAdapter
    n_classes: int
    image_size: tuple[int, int]  # dataset resolution (augmentations work there)
    memory: ReplayMemory | None
    device: torch.device
    generator: torch.Generator  # the strategy's own randomness (augmentations)
    amp: bool = False  # CUDA mixed precision
    ddp: bool = False  # wrap the model in DistributedDataParallel


class ClassifierModel(nn.Module):
    """encoder + linear classifier over all classes: forward -> (features, logits)."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        return f, self.head(f)


class Strategy(abc.ABC):
    name: ClassVar[str]
    needs_memory: ClassVar[bool] = False
    joint: ClassVar[bool] = False  # trains once on all tasks together
    has_logits: ClassVar[bool] = True  # exports a `logits` output
    defaults: ClassVar[StrategyConfig] = StrategyConfig()

    def __init__(self, ctx: Context, config: StrategyConfig) -> None:
        if self.needs_memory and (ctx.memory is None or ctx.memory.config.size == 0):
            raise ValueError(f"strategy {self.name} needs a memory (--memory N, N > 0)")
        self.ctx = ctx
        self.config = config
        self.model = self.build_model().to(ctx.device)
        self.train_model: nn.Module = self.model
        if ctx.ddp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=ctx.amp)

    # ---- building blocks
    def build_model(self) -> nn.Module:
        return ClassifierModel(self.ctx.encoder, self.ctx.n_classes)

    def to_unit(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float [0, 1] on the device."""
        return x_u8.to(self.ctx.device, non_blocking=True).float().div_(255.0)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.ctx.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def forward_train(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            return self.train_model(self.ctx.adapter(x01))

    def forward_views(self, xs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Forward several batches that share one backward pass.

        Single process: one forward per batch, so BatchNorm normalises each batch on its own (as SCR's
        code does). Under DDP: one forward over the concatenation, because DDP expects one forward per
        backward; BatchNorm then sees the batches together.
        """
        if not self.ctx.ddp:
            return [self.forward_train(x) for x in xs]
        sizes = [len(x) for x in xs]
        feats, outs = self.forward_train(torch.cat(xs))
        return list(zip(feats.split(sizes), outs.split(sizes)))

    def step(self, loss: torch.Tensor, grad_scale: float = 1.0) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if grad_scale != 1.0:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(grad_scale)
        self.scaler.step(self.opt)
        self.scaler.update()

    def remember(self, x_u8: torch.Tensor, y: torch.Tensor) -> None:
        if self.ctx.memory is not None and self.ctx.memory.config.size > 0:
            self.ctx.memory.add(x_u8, y)

    # ---- the interface
    def before_task(self, task: Task) -> None:
        self.model.train()

    @abc.abstractmethod
    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        """Learn from one stream batch (uint8 images on the CPU); returns the loss, if one was computed."""

    def after_task(self, task: Task, on_step: StepCallback | None = None) -> None:
        pass

    def prepare_eval(self) -> None:
        self.model.eval()

    @torch.no_grad()
    def predict(self, x_u8: torch.Tensor) -> torch.Tensor:
        _, logits = self.model(self.ctx.adapter(self.to_unit(x_u8)))
        return logits.argmax(1).cpu()

    def export_module(self) -> nn.Module:
        """Takes the normalised input (the card's), returns features or (features, logits)."""
        return self.model

    @staticmethod
    def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y)
