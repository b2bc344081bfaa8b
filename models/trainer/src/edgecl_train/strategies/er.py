"""Experience replay (Chaudhry et al. 2019) as in SCR's code (`agents/exp_replay.py`, config_CVPR).

Per stream batch: cross-entropy on the stream batch and on `mem_batch` samples drawn from the memory,
gradients of both summed, one SGD step; then the stream batch is offered to the reservoir memory.
Official configuration: memory batch 10, SGD lr 0.1, no weight decay, softmax prediction.
"""

from __future__ import annotations

import torch

from .base import ReplayOptions, Strategy


class ER(Strategy):
    name = "er"
    needs_memory = True
    Options = ReplayOptions

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        dev = self.ctx.device
        assert self.ctx.memory is not None
        mx, my = self.ctx.memory.sample(self.config.mem_batch)
        if len(my):
            (_, logits), (_, mlogits) = self.forward_views([self.to_unit(x_u8), self.to_unit(mx)])
            loss = self.ce(logits, y.to(dev)) + self.ce(mlogits, my.to(dev))
        else:
            _, logits = self.forward_train(self.to_unit(x_u8))
            loss = self.ce(logits, y.to(dev))
        self.step(loss)
        self.remember(x_u8, y)
        return float(loss.detach())
