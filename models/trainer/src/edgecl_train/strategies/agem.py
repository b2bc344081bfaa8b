"""A-GEM, averaged gradient episodic memory (Chaudhry et al., ICLR 2019).

Per stream batch: the gradient g of the cross-entropy on the stream batch; the reference gradient g_ref
of the cross-entropy on `mem_batch` samples drawn at random from the memory (by default only samples of
earlier tasks, as in the paper; `-o ref_current_task=true` draws from the whole memory, as the SCR
paper's code does); if g . g_ref < 0, the step uses g - (g . g_ref / g_ref . g_ref) g_ref instead of g
(`agem_project`, applied in the hook between backward and the optimiser step). Then the stream batch is
offered to the reservoir memory. The SCR paper's configuration: memory batch 10, SGD lr 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import ReplayOptions, Strategy


def agem_project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """g projected so that it does not increase the reference loss to first order (g . g_ref >= 0)."""
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref).clamp_min(1e-12)) * g_ref


@dataclass(frozen=True)
class AGEMOptions(ReplayOptions):
    ref_current_task: bool = False  # draw g_ref's batch from the whole memory (SCR's code) or earlier tasks only


class AGEM(Strategy):
    name = "agem"
    needs_memory = True
    Options = AGEMOptions
    supports_ddp = False

    def __init__(self, ctx, config: AGEMOptions) -> None:
        super().__init__(ctx, config)
        self.n_projected = 0
        self.n_steps = 0

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        _, logits = self.forward_train(self.to_unit(x_u8))
        loss = self.ce(logits, y.to(self.ctx.device))
        self.step(loss)
        self.remember(x_u8, y)
        return float(loss.detach())

    def after_backward(self) -> None:
        assert self.ctx.memory is not None and self.task is not None
        self.n_steps += 1
        if self.task.index == 0:  # nothing to protect yet (the SCR code: `if self.task_seen > 0`)
            return
        exclude = None if self.config.ref_current_task else self.task.index
        mx, my = self.ctx.memory.sample(self.config.mem_batch, exclude_task=exclude)
        if len(my) == 0:
            return
        g = self.flat_grad()
        self.opt.zero_grad(set_to_none=True)
        _, mlogits = self.forward_train(self.to_unit(mx))
        self.ce(mlogits, my.to(self.ctx.device)).backward()
        g_ref = self.flat_grad()
        if torch.dot(g, g_ref) < 0:
            self.n_projected += 1
        self.set_flat_grad(agem_project(g, g_ref))
