"""Replay memory: a fixed number of slots (the size) and a selector (which samples are kept), kept apart.

Only the reservoir selector exists so far (Vitter's algorithm R: after n stream items, each one is in
the memory with probability size/n); class-balanced or herding selectors are new `Selector` members.
Images are stored as uint8 exactly as they come from the dataset.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch


class Selector(enum.Enum):
    RESERVOIR = "reservoir"


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


class ReplayMemory:
    def __init__(self, config: MemoryConfig, item_shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.images = torch.zeros((config.size, *item_shape), dtype=torch.uint8)
        self.labels = torch.zeros(config.size, dtype=torch.int64)
        self.n_seen = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Offer a batch of uint8 images (CPU) with their labels to the memory."""
        x, y = x.detach().cpu(), y.detach().cpu()
        for i in range(len(y)):
            slot = reservoir_slot(self.n_seen, self.config.size, self.rng)
            self.n_seen += 1
            if slot is not None:
                self.images[slot] = x[i]
                self.labels[slot] = y[i]
                self.filled = max(self.filled, slot + 1)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to n distinct stored samples, uniformly at random."""
        k = min(n, self.filled)
        idx = torch.from_numpy(self.rng.choice(self.filled, size=k, replace=False)) if k else torch.zeros(0, dtype=torch.long)
        return self.images[idx], self.labels[idx]

    def all(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[: self.filled], self.labels[: self.filled]

    def class_counts(self) -> dict[int, int]:
        u, c = torch.unique(self.labels[: self.filled], return_counts=True)
        return {int(a): int(b) for a, b in zip(u, c)}
