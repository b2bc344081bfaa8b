"""LVT, the lifelong vision transformer (Wang et al., CVPR 2022), built from the paper's description (no
official code is public): class-IL with rehearsal on a small ViT (edgecl_train.vit).

- Inter-task attention (`attention="external"`): every block's queries meet learnable external keys
  K_W (one per token position and head) instead of a key projection of the input (values are still
  projected from the tokens). K_W is carried over from the previous task's model, and the keys earlier
  tasks relied on are held: after each task a key's importance is the mean attention mass it received
  on that task's data (accumulated over tasks; 1 = an average key), and later tasks pay
      att_reg * sum_keys importance_k * ||K_k - K_k^old||^2                     (`key_drift_penalty`)
  so important attention drifts slowly while unused keys stay free.
- Dual classifier (`classifiers=2`): the *injection* classifier learns the new task (cross-entropy over
  the current task's classes only, on the stream batch), so learning new classes does not overwrite
  the old classes' weights in it; the *accumulation* classifier, the one that predicts, is trained on the
  stream batch and the memory batch together with class-balanced weights (`balanced_ce`: every class
  in the joined batch weighs the same, however many samples it has) plus a distillation (temperature
  `temperature`, weight `kd`) of the injection classifier's knowledge of the new classes into it.
  `classifiers=1`: one classifier, plain cross-entropy on stream + memory (the ablation).
- Confidence-aware memory: a fixed total size split equally among the classes seen; at the end of each
  task, each new class's slots go to its training images with the highest softmax confidence in their
  true class (accumulation classifier), old classes keep their first (most confident) ones
  (`confidence_select`). Nothing is stored from the stream during a task.
Paper setting: CIFAR-100, SGD lr 0.1, batch 32, 50 epochs, ~8.9 M parameters; the sizes and epochs here
are the options' and the run's (see models/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..memory import ReplayMemory, Selector
from ..scenario import Task
from ..vit import ViTEncoder
from .base import ReplayOptions, StepCallback, Strategy, TaskData


def key_drift_penalty(keys: list[torch.Tensor], old: list[torch.Tensor], importance: list[torch.Tensor]) -> torch.Tensor:
    """sum over blocks, heads and keys of importance[h, k] * ||keys[h, k] - old[h, k]||^2."""
    total = torch.zeros((), device=keys[0].device)
    for k, o, imp in zip(keys, old, importance):
        total = total + (imp * ((k - o) ** 2).sum(-1)).sum()
    return total


def balanced_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy where each class present in the batch has the same total weight."""
    per = F.cross_entropy(logits, y, reduction="none")
    classes, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv].float()
    return (per * w).sum() / len(classes)


def confidence_select(memory: ReplayMemory, images: torch.Tensor, labels: torch.Tensor, task: int,
                      confidence: torch.Tensor) -> None:
    """Rebuild the memory after a task: size // (classes seen) slots per class; new classes take their
    most confident images (confidence[i] for images[i]), highest first; old classes keep their first
    slots (stored most confident first)."""
    size = memory.config.size
    old_x, old_y, old_t = (memory.images[: memory.filled].clone(), memory.labels[: memory.filled].clone(),
                           memory.tasks[: memory.filled].clone())
    old_classes = sorted(set(old_y.tolist()))
    new_classes = sorted(set(labels.tolist()) - set(old_classes))
    quota = size // max(1, len(old_classes) + len(new_classes))
    xs, ys, ts = [], [], []
    for c in old_classes:
        idx = torch.nonzero(old_y == c).flatten()[:quota]
        xs.append(old_x[idx]); ys.append(old_y[idx]); ts.append(old_t[idx])
    for c in new_classes:
        idx = torch.nonzero(labels == c).flatten()
        order = idx[torch.argsort(confidence[idx], descending=True, stable=True)[:quota]]
        xs.append(images[order]); ys.append(labels[order])
        ts.append(torch.full((len(order),), task, dtype=torch.int64))
    x, y, t = torch.cat(xs), torch.cat(ys), torch.cat(ts)
    memory.filled = len(y)
    memory.images[: len(y)], memory.labels[: len(y)], memory.tasks[: len(y)] = x, y, t


@dataclass(frozen=True)
class LVTOptions(ReplayOptions):
    mem_batch: int = 32
    width: int = 64
    depth: int = 4
    heads: int = 4
    attention: str = "external"  # external (inter-task attention) | self (the ablation)
    classifiers: int = 2  # 2: injection + accumulation; 1: one classifier (the ablation)
    att_reg: float = 1.0
    kd: float = 1.0
    temperature: float = 2.0


class LVTModel(nn.Module):
    def __init__(self, encoder: ViTEncoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, n_classes)  # accumulation classifier (the one that predicts)
        self.injection = nn.Linear(encoder.dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        return f, self.head(f)


class LVT(Strategy):
    name = "lvt"
    needs_memory = True
    Options = LVTOptions
    default_selector = Selector.CLASS_BALANCED  # the slots are filled at task ends (confidence_select)

    def __init__(self, ctx, config: LVTOptions) -> None:
        if config.classifiers not in (1, 2):
            raise ValueError(f"classifiers must be 1 or 2, got {config.classifiers}")
        super().__init__(ctx, config)
        self.old_keys: list[torch.Tensor] = []
        self.importance: list[torch.Tensor] = []

    def build_model(self) -> nn.Module:
        c = self.config
        enc = ViTEncoder(self.ctx.encoder.spec, width=c.width, depth=c.depth, heads=c.heads,
                         attention=c.attention)
        return LVTModel(enc, self.ctx.n_classes)

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        c, dev = self.config, self.ctx.device
        assert self.ctx.memory is not None and self.task is not None
        mx, my = self.ctx.memory.sample(c.mem_batch)
        xx = torch.cat([x_u8, mx]) if len(my) else x_u8
        yy = (torch.cat([y, my]) if len(my) else y).to(dev)
        f, logits = self.forward_train(self.to_unit(xx))
        n = len(y)
        if c.classifiers == 1:
            loss = F.cross_entropy(logits.float(), yy)
        else:
            new = torch.tensor(self.task.classes, device=dev)
            inj = self.model.injection(f[:n]).float()
            loss = F.cross_entropy(inj[:, new], (yy[:n, None] == new[None, :]).float().argmax(1))
            loss = loss + balanced_ce(logits.float(), yy)
            if c.kd > 0:
                T = c.temperature
                kd = F.kl_div(F.log_softmax(logits[:n, new].float() / T, 1),
                              F.softmax(inj[:, new].detach() / T, 1), reduction="batchmean") * T * T
                loss = loss + c.kd * kd
        if self.old_keys and c.att_reg > 0:
            keys = [a.keys for a in self.model.encoder.external()]
            loss = loss + c.att_reg * key_drift_penalty(keys, self.old_keys, self.importance)
        self.step(loss)
        return float(loss.detach())

    @torch.no_grad()
    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        assert self.ctx.memory is not None
        self.model.eval()
        ext = self.model.encoder.external()
        conf, mass = [], [torch.zeros_like(a.keys[..., 0]) for a in ext]
        for s in range(0, len(data.labels), 256):
            x = self.ctx.adapter(self.to_unit(data.images[s : s + 256]))
            _, logits = self.model(x)
            p = F.softmax(logits.float(), 1)
            conf.append(p.gather(1, data.labels[s : s + 256].to(p.device)[:, None]).squeeze(1).cpu())
            for i, a in enumerate(ext):  # attention mass per (head, key), summed over images and queries
                mass[i] += a.last_attention.sum((0, 2))
        self.model.train()
        confidence_select(self.ctx.memory, data.images, data.labels, task.index, torch.cat(conf))
        if ext:
            n = len(data.labels) * (self.model.encoder.pos.shape[1])
            mean = [m / n for m in mass]  # per key: mean attention it received (rows sum to 1 per head)
            s = [m * m.shape[-1] for m in mean]  # 1 = uniform use
            self.importance = s if not self.importance else [a + b for a, b in zip(self.importance, s)]
            self.old_keys = [a.keys.detach().clone() for a in ext]
