"""PNN, progressive neural networks (Rusu et al. 2016): one new column per task, old columns frozen,
lateral connections from every old column's layer l-1 into the new column's layer l.

Column k, hidden layer l (ReLU), eq. (1) of the paper with linear laterals:
    h_l^k = relu( W_l^k h_{l-1}^k + sum_{j<k} U_l^{k:j} h_{l-1}^j ),   h_0 = x
Task k's head reads the concatenation [h_L^k, h_L^0, ..., h_L^{k-1}] (the output layer's laterals).
Columns are fully connected (`width` units per hidden layer, `depth` layers) over the flattened
normalised image. Nothing old changes (no forgetting by construction); the model grows by one
column, its laterals and a head per task: `model_size` counts what serving all tasks stores.
(The paper's non-linear "adapters" with a learned scale are left out: the laterals are linear.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options
from .taskil import TaskILStrategy, count


@dataclass(frozen=True)
class PNNOptions(Options):
    width: int = 128  # hidden units per layer of each column
    depth: int = 2  # hidden layers per column


class Column(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int, n_prev: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_features if l == 0 else width, width) for l in range(depth)])
        # laterals[l-1][j]: U_l^{k:j}, from old column j's layer l-1 into this column's layer l (l >= 1)
        self.laterals = nn.ModuleList([
            nn.ModuleList([nn.Linear(width, width, bias=False) for _ in range(n_prev)]) for _ in range(depth - 1)
        ])

    def forward(self, x: torch.Tensor, prev: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """x: flattened input; prev[j]: old column j's hidden activations per layer. Returns this column's."""
        hs = [F.relu(self.layers[0](x))]
        for l in range(1, len(self.layers)):
            z = self.layers[l](hs[-1])
            for j, u in enumerate(self.laterals[l - 1]):
                z = z + u(prev[j][l - 1])
            hs.append(F.relu(z))
        return hs


class PNNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.columns = nn.ModuleList()
        self.heads = nn.ModuleList()


class PNN(TaskILStrategy):
    name = "pnn"
    Options = PNNOptions

    def build_model(self) -> nn.Module:
        return PNNModel()

    def setup_task(self, task: Task) -> None:
        c = self.config
        k = len(self.model.columns)
        for p in self.model.parameters():  # old columns and heads: frozen
            p.requires_grad_(False)
        self.model.columns.append(Column(self.in_features(), c.width, c.depth, k))
        self.model.heads.append(nn.Linear(c.width * (k + 1), len(task.classes)))

    def trainable(self) -> list[nn.Parameter]:
        t = len(self.model.columns) - 1
        return [*self.model.columns[t].parameters(), *self.model.heads[t].parameters()]

    def task_features(self, x: torch.Tensor, t: int, deterministic: bool = False) -> torch.Tensor:
        x = x.flatten(1)
        acts: list[list[torch.Tensor]] = []
        for k in range(t + 1):
            acts.append(self.model.columns[k](x, acts))
        return torch.cat([acts[t][-1]] + [acts[j][-1] for j in range(t)], 1)

    def task_head(self, f: torch.Tensor, t: int, deterministic: bool = False) -> torch.Tensor:
        return self.model.heads[t](f)

    def model_size(self) -> dict:
        return {"parameters": count(self.model.parameters()), "columns": len(self.model.columns)}
