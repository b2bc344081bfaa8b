"""DeepInversion-style data-free distillation, the ABD paper's baseline (official `DeepInversionGenBN`).

The generator, its four losses and its training after each task are ABD's (`abd.GeneratorTrainer`, the
same code); what differs is the learner, which uses plain distillation (the official
`DeepInversionGenBN.update_model`, `mu` 1, temperature 2, no T^2 factor as the official `loss_fn_kd`):
- cross-entropy on the real images over all the classes seen;
- distillation on the real images over the old classes: -sum softmax(old / T) log softmax(new / T);
- distillation on the synthetic images over all the classes seen, the target being the old model's
  softmax(old / T) over the old classes padded with zeros for the new ones.
Real and synthetic images go through the model in one batch (BatchNorm sees both), as the official code.
The ABD paper (Sec. 4) shows why this fails: the features learn to tell real from synthetic images
rather than old classes from new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .abd import InversionOptions, _Inversion
from .lwf import distillation_ce


@dataclass(frozen=True)
class DeepInversionOptions(InversionOptions):
    mu: float = 1.0
    temperature: float = 2.0


def soft_target_ce(new_logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of -sum_c target_c log softmax(new / T)_c (target: probabilities)."""
    return -(target * F.log_softmax(new_logits.float() / temperature, dim=1)).sum(1).mean()


class DeepInversion(_Inversion):
    name = "deepinversion"
    Options = DeepInversionOptions

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        y = y.to(self.ctx.device)
        x = self.ctx.adapter(self.to_unit(x_u8))
        seen = self.seen_classes
        if self.old_model is None:
            _, logits = self.train_model(x)
            loss = F.cross_entropy(logits[:, seen].float(), self.seen_pos(y, seen))
            self.step(loss)
            return float(loss.detach())
        n, T, oc = len(y), self.config.temperature, self.old_classes
        xs, _, old_syn = self.synthetic(n)
        _, logits = self.train_model(torch.cat([x, xs]))
        loss = F.cross_entropy(logits[:n, seen].float(), self.seen_pos(y, seen))
        with torch.no_grad():
            old_real = self.old_model(x)[1][:, oc]
        loss = loss + self.config.mu * distillation_ce(logits[:n, oc], old_real, T)
        # synthetic: target over the seen classes = softmax(old / T) on the old ones (in `seen` order), 0 on new
        target = torch.zeros(n, len(seen), device=logits.device)
        target[:, self.seen_pos(torch.tensor(oc, device=logits.device), seen)] = F.softmax(old_syn.float() / T, 1)
        loss = loss + self.config.mu * soft_target_ce(logits[n:, seen], target, T)
        self.step(loss)
        return float(loss.detach())
