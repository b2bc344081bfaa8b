"""GDumb (Prabhu et al., ECCV 2020), as in the SCR paper's code (`agents/gdumb.py`).

The stream only fills a class-balanced memory (the `class_balanced` selector: greedy, a random sample of
the largest class gives way when a class under its share size // (classes seen) arrives and the memory is
full). Before each evaluation (here: at the end of every task) a network is trained FROM SCRATCH on the
memory alone: `mem_epochs` (70) epochs in batches of `batch` (10), SGD lr 0.1, gradient norm clipped at
10. Nothing else is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..memory import Selector
from ..scenario import Task
from .base import ClassifierModel, Options, StepCallback, Strategy, TaskData


@dataclass(frozen=True)
class GDumbOptions(Options):
    clip: float = 10.0
    mem_epochs: int = 70
    batch: int = 10


class GDumb(Strategy):
    name = "gdumb"
    needs_memory = True
    Options = GDumbOptions
    supports_ddp = False
    default_selector = Selector.CLASS_BALANCED

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        self.remember(x_u8, y)
        return None

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        assert self.ctx.memory is not None and self.ctx.make_encoder is not None
        self.model = ClassifierModel(self.ctx.make_encoder(), self.ctx.n_classes).to(self.ctx.device)
        self.train_model = self.model
        self.opt = self.make_optimizer(self.model.parameters())
        self.model.train()
        mx, my = self.ctx.memory.all()
        b = self.config.batch
        for _ in range(self.config.mem_epochs):
            perm = torch.randperm(len(my), generator=self.ctx.generator)
            for s in range(0, len(perm) - b + 1, b):
                idx = perm[s : s + b]
                _, logits = self.forward_train(self.to_unit(mx[idx]))
                loss = self.ce(logits, my[idx].to(self.ctx.device))
                self.step(loss)
                if on_step is not None:
                    on_step(float(loss.detach()))
