"""AGS-CL, adaptive group sparsity (Jung et al., NeurIPS 2020), on a fully connected network with one
head per task.

Groups: a hidden node n's incoming weights and bias, theta_n. After each task the node's importance
is updated from its mean ReLU activation on the task's data, Omega_n <- eta * Omega_n + mean act_n.
While learning a task, after every optimiser step (step size lr) two proximal operators run:
- unimportant nodes (Omega_n = 0), group lasso mu * ||theta_n||_2 (`prox_group_lasso`):
      theta_n <- theta_n * max(0, 1 - lr * mu / ||theta_n||)
  which drives the nodes this task does not need exactly to zero (kept free for later tasks);
- important nodes, the drift penalty lam * Omega_n * ||theta_n - theta_n^old||_2 (`prox_group_drift`):
      theta_n <- theta_n^old + (theta_n - theta_n^old) * max(0, 1 - lr * lam * Omega_n / ||theta_n - theta_n^old||)
  which holds them (exactly at the old value when the pull is strong).
After the task: Omega updated; the weights from unimportant nodes into important nodes of the next
layer are set to zero and frozen (so re-initialised nodes cannot disturb what old tasks use); the
unimportant nodes' incoming weights are re-initialised at random for the next task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, TaskData
from .taskil import TaskILStrategy, count


def prox_group_lasso(theta: torch.Tensor, step: float) -> torch.Tensor:
    """Rows of `theta` are groups: each row scaled by max(0, 1 - step / ||row||)."""
    norm = theta.norm(dim=1, keepdim=True)
    return theta * torch.clamp(1 - step / norm.clamp_min(1e-12), min=0.0)


def prox_group_drift(theta: torch.Tensor, old: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Rows pulled towards `old`: old + (theta-old) * max(0, 1 - step_row / ||theta_row - old_row||)."""
    d = theta - old
    norm = d.norm(dim=1, keepdim=True)
    return old + d * torch.clamp(1 - step[:, None] / norm.clamp_min(1e-12), min=0.0)


@dataclass(frozen=True)
class AGSCLOptions(Options):
    width: int = 400
    depth: int = 2
    mu: float = 10.0  # group-lasso strength on unimportant nodes (prox step lr * mu)
    lam: float = 100.0  # drift strength on important nodes (prox step lr * lam * Omega)
    eta: float = 0.9  # decay of the running importance
    importance_samples: int = 1000


class AGSModel(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_features if l == 0 else width, width) for l in range(depth)])
        self.heads = nn.ModuleList()

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        hs, h = [], x.flatten(1)
        for layer in self.layers:
            h = F.relu(layer(h))
            hs.append(h)
        return hs


class AGSCL(TaskILStrategy):
    name = "agscl"
    Options = AGSCLOptions

    def __init__(self, ctx, config: AGSCLOptions) -> None:
        super().__init__(ctx, config)
        L = len(self.model.layers)
        self.omega = [torch.zeros(l.out_features, device=ctx.device) for l in self.model.layers]
        self.old = [None] * L  # (weight, bias) at the start of the task
        self.frozen = [torch.zeros_like(l.weight, dtype=torch.bool) for l in self.model.layers]

    def build_model(self) -> nn.Module:
        return AGSModel(self.in_features(), self.config.width, self.config.depth)

    def setup_task(self, task: Task) -> None:
        for h in self.model.heads:
            h.requires_grad_(False)
        self.model.heads.append(nn.Linear(self.config.width, len(task.classes)))
        self.old = [(l.weight.detach().clone(), l.bias.detach().clone()) for l in self.model.layers]

    def trainable(self) -> list[nn.Parameter]:
        return [*self.model.layers.parameters(), *self.model.heads[-1].parameters()]

    def task_features(self, x, t, deterministic=False):
        return self.model.hidden(x)[-1]

    def task_head(self, f, t, deterministic=False):
        return self.model.heads[t](f)

    def after_backward(self) -> None:
        for l, fr in zip(self.model.layers, self.frozen):
            if l.weight.grad is not None:
                l.weight.grad[fr] = 0

    @torch.no_grad()
    def after_step(self) -> None:
        lr = self.opt.param_groups[0]["lr"]
        c = self.config
        for l, om, (w0, b0) in zip(self.model.layers, self.omega, self.old):
            theta = torch.cat([l.weight, l.bias[:, None]], 1)
            old = torch.cat([w0, b0[:, None]], 1)
            imp = om > 0
            new = theta.clone()
            if (~imp).any():
                new[~imp] = prox_group_lasso(theta[~imp], lr * c.mu)
            if imp.any():
                new[imp] = prox_group_drift(theta[imp], old[imp], lr * c.lam * om[imp])
            l.weight.copy_(new[:, :-1])
            l.bias.copy_(new[:, -1])

    @torch.no_grad()
    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        c = self.config
        n = min(c.importance_samples, len(data.labels))
        idx = torch.randperm(len(data.labels), generator=self.ctx.generator)[:n]
        self.model.eval()
        hs = self.model.hidden(self.ctx.adapter(self.to_unit(data.images[idx])))
        self.model.train()
        for i, h in enumerate(hs):
            act = h.mean(0)
            self.omega[i] = c.eta * self.omega[i] + act / act.max().clamp_min(1e-12)
        for i, l in enumerate(self.model.layers):
            unimp = self.omega[i] <= 0
            if i + 1 < len(self.model.layers):  # cut unimportant -> important edges of the next layer
                nxt = self.model.layers[i + 1]
                cut = (self.omega[i + 1] > 0)[:, None] & unimp[None, :]
                nxt.weight[cut] = 0
                self.frozen[i + 1] |= cut
            if unimp.any():  # re-initialise the free nodes
                fresh = nn.Linear(l.in_features, l.out_features).to(l.weight.device)
                l.weight[unimp] = fresh.weight[unimp]
                l.bias[unimp] = 0
        # The heads of old tasks must not see the re-initialised nodes: they were zero (pruned) while
        # those heads were trained, so their output weights from them are zeroed.
        last_unimp = self.omega[-1] <= 0
        for h in self.model.heads:
            h.weight[:, last_unimp] = 0

    def model_size(self) -> dict:
        alive = [int((om > 0).sum()) for om in self.omega]
        return {"parameters": count(self.model.parameters()), "important_nodes": alive}
