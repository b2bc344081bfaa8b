"""Fine-tuning: cross-entropy on the stream only (the lower bound: forgets)."""

from __future__ import annotations

import torch

from .base import Strategy


class Finetune(Strategy):
    name = "finetune"

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        y = y.to(self.ctx.device)
        _, logits = self.forward_train(self.to_unit(x_u8))
        loss = self.ce(logits, y)
        self.step(loss)
        return float(loss.detach())
