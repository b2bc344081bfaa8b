"""Replay memory: a fixed number of slots (the size) and a selector (which samples are kept), kept apart.

Selectors (`Selector`):
- `reservoir`: Vitter's algorithm R over the stream: after n stream items, each one is in the memory
  with probability size/n (ER, A-GEM, MIR, SCR, GEM; iCaRL in the SCR paper's online code).
- `class_balanced`: GDumb's greedy balancer: a sample of class c is stored while c holds fewer than
  size // (classes seen) slots; when the memory is full, a random sample of the largest class gives way.
- `herding`: iCaRL's exemplars. Nothing is stored from the stream; at the end of each task
  (`select_at_task_end`) every class seen gets size // (classes seen) slots: old classes keep the first
  ones of their herding order, new classes get theirs by herding over the task's L2-normalised features.

Each slot holds the uint8 image exactly as it came from the dataset, its label, the task it came from and,
when the strategy passes them, the logits the model gave it when it was stored (DER-style replay).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


class Selector(enum.Enum):
    RESERVOIR = "reservoir"
    CLASS_BALANCED = "class_balanced"
    HERDING = "herding"


@dataclass(frozen=True)
class MemoryConfig:
    size: int
    selector: Selector = Selector.RESERVOIR

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"memory size must be >= 0, got {self.size}")


def reservoir_slot(n_seen: int, size: int, rng: np.random.Generator) -> int | None:
    """Slot for the stream item that arrives after `n_seen` others, or None to drop it (algorithm R)."""
    if n_seen < size:
        return n_seen
    j = int(rng.integers(0, n_seen + 1))
    return j if j < size else None


def herding_order(features: torch.Tensor, m: int) -> list[int]:
    """iCaRL's herding (Rebuffi et al. 2017, Alg. 4): the k-th pick is the sample that brings the mean of
    the k picked ones closest to the mean of all `features` ([n, d]); no sample is picked twice."""
    f = features.double()
    mu = f.mean(0)
    picked: list[int] = []
    running = torch.zeros_like(mu)
    free = torch.ones(len(f), dtype=torch.bool)
    for k in range(1, min(m, len(f)) + 1):
        dist = ((mu - (running + f) / k) ** 2).sum(1)
        dist[~free] = float("inf")
        i = int(dist.argmin())
        picked.append(i)
        free[i] = False
        running += f[i]
    return picked


class ReplayMemory:
    def __init__(self, config: MemoryConfig, item_shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.images = torch.zeros((config.size, *item_shape), dtype=torch.uint8)
        self.labels = torch.zeros(config.size, dtype=torch.int64)
        self.tasks = torch.zeros(config.size, dtype=torch.int64)
        self.logits: torch.Tensor | None = None  # [size, n_logits], allocated by the first add with logits
        self.n_seen = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    def _store(self, slot: int, x: torch.Tensor, y: torch.Tensor, task: int, logits: torch.Tensor | None) -> None:
        self.images[slot] = x
        self.labels[slot] = y
        self.tasks[slot] = task
        if logits is not None:
            if self.logits is None:
                self.logits = torch.zeros((self.config.size, logits.shape[-1]), dtype=torch.float32)
            self.logits[slot] = logits
        self.filled = max(self.filled, slot + 1)

    def _balanced_slot(self, y: int) -> int | None:
        labels = self.labels[: self.filled]
        classes = set(labels.tolist()) | {y}
        quota = self.config.size // len(classes)
        count_y = int((labels == y).sum())
        if count_y >= quota:
            return None
        if self.filled < self.config.size:
            return self.filled
        u, c = torch.unique(labels, return_counts=True)
        largest = int(u[int(c.argmax())])
        slots = torch.nonzero(labels == largest).flatten()
        return int(slots[int(self.rng.integers(0, len(slots)))])

    def add(self, x: torch.Tensor, y: torch.Tensor, task: int = 0, logits: torch.Tensor | None = None) -> None:
        """Offer a batch of uint8 images (CPU) with their labels (and optionally logits) to the memory."""
        if self.config.size == 0 or self.config.selector is Selector.HERDING:
            self.n_seen += len(y)
            return
        x, y = x.detach().cpu(), y.detach().cpu()
        lg = None if logits is None else logits.detach().float().cpu()
        for i in range(len(y)):
            if self.config.selector is Selector.RESERVOIR:
                slot = reservoir_slot(self.n_seen, self.config.size, self.rng)
            else:
                slot = self._balanced_slot(int(y[i]))
            self.n_seen += 1
            if slot is not None:
                self._store(slot, x[i], y[i], task, None if lg is None else lg[i])

    def select_at_task_end(self, images: torch.Tensor, labels: torch.Tensor, task: int,
                           features: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Herding selector: rebuild the memory after a task from the task's data.

        `features` maps uint8 images to [n, d] features (the strategy's current encoder); they are
        L2-normalised here, as iCaRL does."""
        if self.config.selector is not Selector.HERDING or self.config.size == 0:
            return
        old_x, old_y, old_t = self.images[: self.filled].clone(), self.labels[: self.filled].clone(), \
            self.tasks[: self.filled].clone()
        new_classes = sorted(set(labels.tolist()) - set(old_y.tolist()))
        n_classes = len(set(old_y.tolist())) + len(new_classes)
        quota = self.config.size // max(1, n_classes)
        keep_x, keep_y, keep_t = [], [], []
        for c in sorted(set(old_y.tolist())):  # old classes: their first `quota` (stored in herding order)
            idx = torch.nonzero(old_y == c).flatten()[:quota]
            keep_x.append(old_x[idx]); keep_y.append(old_y[idx]); keep_t.append(old_t[idx])
        for c in new_classes:
            idx = torch.nonzero(labels == c).flatten()
            f = torch.nn.functional.normalize(features(images[idx]).float().cpu(), dim=1)
            order = idx[herding_order(f, quota)]
            keep_x.append(images[order]); keep_y.append(labels[order])
            keep_t.append(torch.full((len(order),), task, dtype=torch.int64))
        x, y, t = torch.cat(keep_x), torch.cat(keep_y), torch.cat(keep_t)
        self.filled = len(y)
        self.images[: self.filled], self.labels[: self.filled], self.tasks[: self.filled] = x, y, t

    def sample(self, n: int, exclude_task: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to n distinct stored samples, uniformly at random (optionally none from `exclude_task`)."""
        idx = self.sample_indices(n, exclude_task)
        return self.images[idx], self.labels[idx]

    def sample_indices(self, n: int, exclude_task: int | None = None) -> torch.Tensor:
        pool = np.arange(self.filled)
        if exclude_task is not None:
            pool = pool[self.tasks[: self.filled].numpy() != exclude_task]
        k = min(n, len(pool))
        if k == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.from_numpy(self.rng.choice(pool, size=k, replace=False)).long()

    def all(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[: self.filled], self.labels[: self.filled]

    def task_ids(self) -> torch.Tensor:
        return self.tasks[: self.filled]

    def class_counts(self) -> dict[int, int]:
        u, c = torch.unique(self.labels[: self.filled], return_counts=True)
        return {int(a): int(b) for a, b in zip(u, c)}
