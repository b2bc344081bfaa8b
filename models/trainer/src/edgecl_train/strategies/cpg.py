"""CPG, compacting, picking and growing (Hung et al., NeurIPS 2019), on a fully connected network with
one head per task.

Every hidden weight has an owner: the task that trained and kept it, or none (free). Task t's
effective weight matrix is
    W_eff = W * ( 1[owner = t] + 1[owner < t] * m_t )
where m_t is a binary mask over the weights of earlier tasks, learned through real-valued scores
(straight-through, as Piggyback): *picking* which frozen weights to reuse. While learning task t the
free weights are handed to it (re-initialised) and trained; old weights never change.
After the task, *compacting*: the `prune` fraction of task t's own weights with the smallest magnitude
are released (set to zero, owner none), and the kept ones are retrained for `retrain_epochs` epochs
(the picks stay as learned). *Growing*: before a task, when fewer than `min_free` of a layer's weights
are free, every hidden layer gets `grow` new units (their weights free). Hidden biases are per task.
`model_size` counts the weights kept (owned by some task), the pick masks (one bit per old weight per
task) and the heads. (The paper prunes gradually until the accuracy drops and grows to reach an
accuracy goal; one fixed pruning ratio and a capacity rule stand in for both here.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, TaskData
from .taskil import TaskILStrategy, binary_mask


@dataclass(frozen=True)
class CPGOptions(Options):
    width: int = 400
    depth: int = 2
    prune: float = 0.7  # fraction of a task's own weights released after it
    retrain_epochs: int = 1
    min_free: float = 0.1
    grow: int = 64
    init_score: float = 1e-2
    threshold: float = 5e-3


class CPGModel(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.weights = nn.ParameterList([nn.Parameter(nn.Linear(a, b).weight.detach().clone())
                                         for a, b in zip(sizes[:-1], sizes[1:])])
        self.owner = [torch.full((b, a), -1, dtype=torch.long) for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = nn.ModuleList()  # per task: ParameterList, one bias per layer
        self.picks = nn.ModuleList()  # per task: ParameterList, pick scores per layer
        self.heads = nn.ModuleList()


class CPG(TaskILStrategy):
    name = "cpg"
    Options = CPGOptions

    def build_model(self) -> nn.Module:
        return CPGModel(self.in_features(), self.config.width, self.config.depth)

    # ---- growing
    @torch.no_grad()
    def _grow(self, k: int) -> None:
        m = self.model
        L = len(m.weights)
        for l in range(L):
            w, o = m.weights[l].data, m.owner[l]
            rows = nn.Linear(w.shape[1], k).weight.detach().to(w) if l < L else None
            w = torch.cat([w, rows], 0)
            o = torch.cat([o, torch.full((k, o.shape[1]), -1, dtype=torch.long, device=o.device)], 0)
            if l > 0:  # new inputs from the previous layer's new units
                w = torch.cat([w, torch.zeros(w.shape[0], k).to(w)], 1)
                o = torch.cat([o, torch.full((o.shape[0], k), -1, dtype=torch.long, device=o.device)], 1)
            m.weights[l] = nn.Parameter(w)
            m.owner[l] = o
        for t in range(len(m.biases)):
            for l in range(L):
                m.biases[t][l] = nn.Parameter(torch.cat([m.biases[t][l].data, torch.zeros(k).to(w)]),
                                              requires_grad=False)
                s = m.picks[t][l].data
                s = torch.cat([s, torch.zeros(k, s.shape[1]).to(s)], 0)
                if l > 0:
                    s = torch.cat([s, torch.zeros(s.shape[0], k).to(s)], 1)
                m.picks[t][l] = nn.Parameter(s, requires_grad=False)
        for t, h in enumerate(m.heads):  # old heads: zero weights from the new units
            new = nn.Linear(h.in_features + k, h.out_features).to(h.weight.device)
            new.weight.data.zero_()
            new.weight.data[:, : h.in_features] = h.weight.data
            new.bias.data = h.bias.data.clone()
            new.requires_grad_(False)
            m.heads[t] = new

    @torch.no_grad()
    def setup_task(self, task: Task) -> None:
        m, c = self.model, self.config
        m.owner = [o.to(self.ctx.device) for o in m.owner]
        if task.index > 0 and any(float((o < 0).float().mean()) < c.min_free for o in m.owner):
            self._grow(c.grow)
        t = task.index
        for p in [*m.biases.parameters(), *m.picks.parameters(), *m.heads.parameters()]:
            p.requires_grad_(False)
        for l, w in enumerate(m.weights):  # free weights -> this task, freshly initialised
            free = m.owner[l] < 0
            fresh = nn.Linear(w.shape[1], w.shape[0]).weight.to(w)
            w.data[free] = fresh[free]
            m.owner[l][free] = t
        m.biases.append(nn.ParameterList([nn.Parameter(torch.zeros(w.shape[0], device=w.device)) for w in m.weights]))
        m.picks.append(nn.ParameterList([nn.Parameter(torch.full_like(w, c.init_score)) for w in m.weights]))
        m.heads.append(nn.Linear(m.weights[-1].shape[0], len(task.classes)).to(self.ctx.device))

    def trainable(self) -> list[nn.Parameter]:
        m = self.model
        return [*m.weights, *m.biases[-1], *m.picks[-1], *m.heads[-1].parameters()]

    def after_backward(self) -> None:
        t = len(self.model.heads) - 1
        for w, o in zip(self.model.weights, self.model.owner):
            if w.grad is not None:
                w.grad[o != t] = 0  # old (and free) weights never move

    def effective(self, l: int, t: int) -> torch.Tensor:
        w, o = self.model.weights[l], self.model.owner[l]
        own = (o == t).to(w.dtype)
        old = ((o >= 0) & (o < t)).to(w.dtype)
        pick = binary_mask(self.model.picks[t][l], self.config.threshold)
        return w * (own + old * pick)

    def task_features(self, x, t, deterministic=False):
        h = x.flatten(1)
        for l in range(len(self.model.weights)):
            h = F.relu(F.linear(h, self.effective(l, t), self.model.biases[t][l]))
        return h

    def task_head(self, f, t, deterministic=False):
        h = self.model.heads[t]
        return F.linear(f[:, : h.in_features], h.weight, h.bias)

    @torch.no_grad()
    def compact(self, t: int) -> None:
        """Release the `prune` fraction of task t's own weights with the smallest magnitude."""
        m = self.model
        for w, o in zip(m.weights, m.owner):
            own = o == t
            n = int(own.sum())
            k = int(self.config.prune * n)
            if k == 0:
                continue
            mags = w.data[own].abs()
            cut = mags.kthvalue(k).values
            release = own & (w.data.abs() <= cut)
            w.data[release] = 0
            o[release] = -1

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        t = task.index
        self.compact(t)
        m = self.model
        self.fit(data, t, self.config.retrain_epochs, [*m.weights, *m.biases[t], *m.heads[t].parameters()],
                 on_step, batch_size=64)

    def model_size(self) -> dict:
        m = self.model
        kept = sum(int((o >= 0).sum()) for o in m.owner)
        total = sum(o.numel() for o in m.owner)
        pick_bits = 0
        for t in range(len(m.heads)):
            pick_bits += sum(int(((o >= 0) & (o < t)).sum()) for o in m.owner)
        small = sum(p.numel() for p in [*m.biases.parameters(), *m.heads.parameters()])
        return {"parameters": kept + small, "allocated": total + small, "mask_bits": pick_bits,
                "width": [w.shape[0] for w in m.weights]}
