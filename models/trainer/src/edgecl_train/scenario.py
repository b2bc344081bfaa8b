"""Class-incremental splits of a dataset and the order in which the learner sees them.

Class order: the dataset's label order (0, 1, ..., K-1), as SCR's code with `fix_order: True`, unless
`class_order_seed` is given (then a numpy PCG64 permutation of the labels from that seed). Task t gets
the next `classes_per_task` classes (the last task takes the remainder). Within a task, the training
images are shuffled with the run's seed. Online: one pass in stream batches (SCR: 10, last partial
batch dropped as in its DataLoader); offline: `epochs` passes, reshuffled every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .data import ImageSet


@dataclass(frozen=True)
class ScenarioConfig:
    n_tasks: int = 5
    class_order_seed: int | None = None
    online: bool = True
    epochs: int = 1
    batch_size: int = 10
    # classes of the first task (PyCIL's "B50": 50, then the rest split over n_tasks - 1); None: equal shares
    initial_classes: int | None = None

    def __post_init__(self) -> None:
        if self.n_tasks < 1 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"bad scenario {self}")
        if self.online and self.epochs != 1:
            raise ValueError("an online scenario is one pass: epochs must be 1")


@dataclass(frozen=True)
class Task:
    index: int
    classes: tuple[int, ...]
    train_idx: np.ndarray
    test_idx: np.ndarray


def class_order(n_classes: int, seed: int | None) -> list[int]:
    if seed is None:
        return list(range(n_classes))
    return [int(c) for c in np.random.default_rng(seed).permutation(n_classes)]


def split_tasks(train: ImageSet, test: ImageSet, config: ScenarioConfig) -> list[Task]:
    n_classes = len(train.classes)
    order = class_order(n_classes, config.class_order_seed)
    if config.n_tasks > n_classes:
        raise ValueError(f"{config.n_tasks} tasks but only {n_classes} classes")
    first = config.initial_classes
    if first is not None and not (0 < first < n_classes and config.n_tasks > 1):
        raise ValueError(f"initial_classes {first} needs 0 < it < {n_classes} classes and at least 2 tasks")
    starts = ([0] + [first + t * ((n_classes - first) // (config.n_tasks - 1)) for t in range(config.n_tasks - 1)]
              if first is not None else [t * (n_classes // config.n_tasks) for t in range(config.n_tasks)])
    tasks = []
    for t in range(config.n_tasks):
        cls = order[starts[t] : starts[t + 1]] if t < config.n_tasks - 1 else order[starts[t] :]
        tasks.append(Task(t, tuple(cls), np.flatnonzero(np.isin(train.labels, cls)),
                          np.flatnonzero(np.isin(test.labels, cls))))
    return tasks


def joint_task(tasks: list[Task]) -> Task:
    """All tasks as one (the `joint` upper bound)."""
    return Task(0, tuple(c for t in tasks for c in t.classes), np.concatenate([t.train_idx for t in tasks]),
                np.concatenate([t.test_idx for t in tasks]))


def batches(task: Task, config: ScenarioConfig, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches of the task's training images, in the order the learner sees them."""
    for _ in range(config.epochs):
        idx = task.train_idx.copy()
        rng.shuffle(idx)
        for s in range(0, len(idx) - config.batch_size + 1, config.batch_size):
            yield idx[s : s + config.batch_size]


def n_batches(task: Task, config: ScenarioConfig) -> int:
    return config.epochs * (len(task.train_idx) // config.batch_size)
