"""MIR, maximally interfered retrieval (Aljundi et al., NeurIPS 2019), as in the SCR paper's code
(`utils/buffer/mir_retrieve.py`): experience replay whose memory batch is chosen, not drawn.

Per stream batch: the gradient g of the stream loss; a virtual SGD step theta' = theta - lr * g; from
`subsample` (50) random memory samples, the `mem_batch` (10) whose cross-entropy rises most under the
virtual step (`mir_scores` = loss(theta') - loss(theta)); then one SGD step on the stream loss plus
the chosen samples' loss. Then the stream batch goes to the reservoir memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .base import ReplayOptions, Strategy


@torch.no_grad()
def mir_scores(model: nn.Module, forward_logits, grads: dict[str, torch.Tensor], lr: float,
               x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy after the virtual step (parameters minus lr * grads) minus before it.

    `forward_logits(model_or_call, x)` returns logits; `grads` maps parameter names to gradients.

    BatchNorm, as in the official code (`get_future_step_parameters` deep-copies the model; both forwards
    run in the model's current mode, train during training): the forward before the step is the model's
    own, so in train mode it moves the model's running statistics once, as the official one does; the
    virtual model gets copies of the buffers, so its forward moves only those copies and the model's
    running statistics never see the virtual parameters' activations."""
    params = dict(model.named_parameters())
    virtual = {n: (p - lr * grads[n]) if n in grads else p for n, p in params.items()}
    virtual.update({n: b.clone() for n, b in model.named_buffers()})
    pre = F.cross_entropy(forward_logits(lambda b: model(b), x).float(), y, reduction="none")
    post = F.cross_entropy(forward_logits(lambda b: functional_call(model, virtual, (b,)), x).float(), y,
                           reduction="none")
    return post - pre


@dataclass(frozen=True)
class MIROptions(ReplayOptions):
    subsample: int = 50  # memory candidates scored per step


class MIR(Strategy):
    name = "mir"
    needs_memory = True
    Options = MIROptions
    supports_ddp = False

    def _logits(self, call, x01: torch.Tensor) -> torch.Tensor:
        return call(self.ctx.adapter(x01))[1]

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        dev = self.ctx.device
        assert self.ctx.memory is not None
        x01 = self.to_unit(x_u8)
        _, logits = self.forward_train(x01)
        loss = self.ce(logits, y.to(dev))
        cx, cy = self.ctx.memory.sample(self.config.subsample)
        if len(cy):
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            g = torch.autograd.grad(loss, [p for _, p in named], retain_graph=True, allow_unused=True)
            grads = {n: gi for (n, _), gi in zip(named, g) if gi is not None}
            sc = mir_scores(self.model, self._logits, grads, self.config.lr, self.to_unit(cx), cy.to(dev))
            pick = sc.argsort(descending=True)[: self.config.mem_batch].cpu()
            _, mlogits = self.forward_train(self.to_unit(cx[pick]))
            loss = loss + self.ce(mlogits, cy[pick].to(dev))
        self.step(loss)
        self.remember(x_u8, y)
        return float(loss.detach())
