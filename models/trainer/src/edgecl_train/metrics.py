"""Class-incremental metrics: the accuracy matrix and what the field reads from it.

acc[t][j] = accuracy (%) on task j's test images after training on tasks 0..t (j > t: not yet seen).
- A_t = mean_{j<=t} acc[t][j]; final average accuracy = A_{T-1} (the SCR paper's "average accuracy
  at the end"); average incremental accuracy = mean_t A_t.
- forgetting = mean over j < T-1 of ( max_{t in [j, T-2]} acc[t][j] - acc[T-1][j] ).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Metrics:
    accuracy_matrix: list[list[float]]
    task_classes: list[list[int]]
    seen_accuracy: list[float]  # accuracy over all seen test images (sample-weighted), after each task
    seen_tasks: list[int] | None = None  # tasks seen after each row (default t+1; joint: all)
    task_il_accuracy_matrix: list[list[float]] | None = None  # the same with the task id given at test time
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def average_accuracy(self) -> list[float]:
        seen = self.seen_tasks or list(range(1, len(self.accuracy_matrix) + 1))
        return [float(np.mean(row[:k])) for k, row in zip(seen, self.accuracy_matrix)]

    @property
    def final_average_accuracy(self) -> float:
        return self.average_accuracy[-1]

    @property
    def task_il_final_average_accuracy(self) -> float | None:
        if not self.task_il_accuracy_matrix:
            return None
        seen = self.seen_tasks or list(range(1, len(self.task_il_accuracy_matrix) + 1))
        return float(np.mean(self.task_il_accuracy_matrix[-1][: seen[-1]]))

    @property
    def average_incremental_accuracy(self) -> float:
        return float(np.mean(self.average_accuracy))

    @property
    def forgetting(self) -> float | None:
        a = np.asarray(self.accuracy_matrix)
        t_last = len(a) - 1
        if t_last < 1 or (self.seen_tasks and self.seen_tasks[-1] != len(a)):
            return None
        drops = [a[j:t_last, j].max() - a[t_last, j] for j in range(t_last)]
        return float(np.mean(drops))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            average_accuracy=self.average_accuracy,
            final_average_accuracy=self.final_average_accuracy,
            average_incremental_accuracy=self.average_incremental_accuracy,
            forgetting=self.forgetting,
            task_il_final_average_accuracy=self.task_il_final_average_accuracy,
        )
        return d

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def plot(self, path: str | Path, title: str = "") -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a = np.asarray(self.accuracy_matrix, dtype=float)
        t = len(a)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        masked = np.where(np.tril(np.ones_like(a, dtype=bool), 0)[:, : a.shape[1]], a, np.nan)
        im = ax1.imshow(masked, vmin=0, vmax=100, cmap="viridis")
        for i in range(t):
            for j in range(a.shape[1]):
                if j <= i:
                    ax1.text(j, i, f"{a[i, j]:.0f}", ha="center", va="center", color="w", fontsize=8)
        ax1.set_xlabel("test task")
        ax1.set_ylabel("after training task")
        ax1.set_title("accuracy matrix (%)")
        fig.colorbar(im, ax=ax1)
        ax2.plot(range(1, t + 1), self.average_accuracy, marker="o", label="A_t (mean over seen tasks)")
        ax2.plot(range(1, t + 1), self.seen_accuracy, marker="s", label="accuracy on all seen test images")
        ax2.set_xlabel("tasks seen")
        ax2.set_ylabel("accuracy (%)")
        ax2.set_ylim(0, 100)
        ax2.grid(alpha=0.3)
        ax2.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
