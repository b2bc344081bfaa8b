"""DEN, dynamically expandable networks (Yoon et al., ICLR 2018), on a fully connected network with one
head per task and a timestamp per hidden unit (the task that added it; task t uses units with
timestamp <= t, so units added later never change an earlier task's output).

- Sparsity: every step is followed by the L1 proximal step (soft threshold lr * `l1`) on the weights
  that step may change, so unused connections become exactly zero.
- Task 0: the whole network is trained.
- Selective retraining (task t > 0): the first `select_fraction` of the steps train only the new head (with a
  stronger L1, `select_l1`, so that it keeps few units),
  then the subnetwork that reaches it is found by a breadth-first search backwards through the non-zero
  weights (`selected_units`), and only the weights inside it (and the head) are retrained.
- Dynamic expansion: after selective retraining, if the task's training loss is above `tau`, every
  hidden layer gets `expand` new units (timestamp t), trained for `expand_epochs` with a group lasso
  (prox, `group_l1`) on each new unit's incoming weights; new units whose group is zero are removed.
- Split / duplicate: an old unit whose incoming weights drifted more than `sigma` (L2, from their value
  at the start of the task) is duplicated: the copy (timestamp t) takes the new weights and its
  outgoing connections, the original gets its old weights back; the new units are then retrained for
  `expand_epochs` with the rest frozen.
`model_size` counts non-zero weights (DEN's network is sparse) and all allocated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, TaskData
from .taskil import TaskILStrategy


def soft_threshold(w: torch.Tensor, step: float) -> torch.Tensor:
    return torch.sign(w) * torch.clamp(w.abs() - step, min=0.0)


def selected_units(weights: list[torch.Tensor], head: torch.Tensor, eps: float = 0.0) -> list[torch.Tensor]:
    """DEN's breadth-first search: units of the last hidden layer with a non-zero weight into the head,
    then, layer by layer backwards, units with a non-zero weight into a selected unit. weights[l] is
    [out, in]; returns one boolean mask per hidden layer."""
    sel = [None] * len(weights)
    cur = (head.abs() > eps).any(0)
    sel[-1] = cur
    for l in range(len(weights) - 1, 0, -1):
        cur = (weights[l][cur].abs() > eps).any(0)
        sel[l - 1] = cur
    return sel


@dataclass(frozen=True)
class DENOptions(Options):
    width: int = 312  # initial units per hidden layer (the paper's MNIST network: 312-128)
    depth: int = 2
    l1: float = 0.02  # L1 strength (prox step lr * l1 per weight)
    select_l1: float = 0.5  # L1 on the new head during the selection phase (a sparse choice of units)
    select_fraction: float = 0.2  # of the task's steps spent choosing units (head only)
    tau: float = 0.05  # expand when the task's training loss after retraining is above this
    expand: int = 32
    group_l1: float = 1e-2
    expand_epochs: int = 1
    sigma: float = 0.3  # split a unit whose incoming weights drifted more than this (L2)


class DENModel(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        lins = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.weights = nn.ParameterList([nn.Parameter(l.weight.detach().clone()) for l in lins])
        self.biases = nn.ParameterList([nn.Parameter(l.bias.detach().clone()) for l in lins])
        self.ts = [torch.zeros(b, dtype=torch.long) for b in sizes[1:]]
        self.head_w = nn.ParameterList()
        self.head_b = nn.ParameterList()


class DEN(TaskILStrategy):
    name = "den"
    Options = DENOptions

    def __init__(self, ctx, config: DENOptions) -> None:
        super().__init__(ctx, config)
        self.masks: dict[int, torch.Tensor] = {}  # id(param) -> where it may change
        self.start: list[torch.Tensor] = []
        self.stats = {"expanded": [], "split": []}

    def build_model(self) -> nn.Module:
        return DENModel(self.in_features(), self.config.width, self.config.depth)

    # ---- forward
    def task_features(self, x, t, deterministic=False):
        m = self.model
        h = x.flatten(1)
        for w, b, ts in zip(m.weights, m.biases, m.ts):
            h = F.relu(F.linear(h, w, b)) * (ts <= t).to(h.dtype)
        return h

    def task_head(self, f, t, deterministic=False):
        w = self.model.head_w[t]
        return F.linear(f[:, : w.shape[1]], w, self.model.head_b[t])

    # ---- what may change
    def _set_masks(self, masks: dict[nn.Parameter, torch.Tensor]) -> None:
        self.masks = {id(p): m for p, m in masks.items()}

    def after_backward(self) -> None:
        for p in self.model.parameters():
            if p.grad is not None and id(p) in self.masks:
                p.grad[~self.masks[id(p)]] = 0

    @torch.no_grad()
    def after_step(self) -> None:
        lr = self.opt.param_groups[0]["lr"]
        selecting = self.task.index > 0 and self.steps_in_task < self.select_steps()
        for p in [*self.model.weights, self.model.head_w[-1]]:
            m = self.masks.get(id(p))
            if m is None:
                continue
            l1 = self.config.select_l1 if selecting and p is self.model.head_w[-1] else self.config.l1
            p.data[m] = soft_threshold(p.data[m], lr * l1)

    def _full(self, p: torch.Tensor, on: bool) -> torch.Tensor:
        return torch.full_like(p, on, dtype=torch.bool)

    # ---- the task
    def setup_task(self, task: Task) -> None:
        m = self.model
        m.ts = [ts.to(self.ctx.device) for ts in m.ts]
        for p in m.parameters():
            p.requires_grad_(False)
        w = nn.Linear(m.weights[-1].shape[0], len(task.classes))
        m.head_w.append(nn.Parameter(w.weight.detach().clone()))
        m.head_b.append(nn.Parameter(w.bias.detach().clone()))
        for p in m.parameters():
            p.requires_grad_(True)
        self.start = [w.detach().clone() for w in m.weights]
        hw, hb = m.head_w[-1], m.head_b[-1]
        if task.index == 0:
            self._set_masks({p: self._full(p, True) for p in [*m.weights, *m.biases, hw, hb]})
        else:  # selection phase: the new head only
            self._set_masks({**{p: self._full(p, False) for p in [*m.weights, *m.biases]},
                             hw: self._full(hw, True), hb: self._full(hb, True)})
        self.steps_in_task = 0

    def trainable(self) -> list[nn.Parameter]:
        m = self.model
        for i, hw in enumerate(m.head_w):  # old heads never move
            if i < len(m.head_w) - 1:
                hw.requires_grad_(False)
                m.head_b[i].requires_grad_(False)
        return [*m.weights, *m.biases, m.head_w[-1], m.head_b[-1]]

    def select_steps(self) -> int:
        return max(1, int(self.config.select_fraction * self.task_steps))

    def observe(self, x_u8, y):
        loss = super().observe(x_u8, y)
        self.steps_in_task += 1
        if self.task.index > 0 and self.steps_in_task == self.select_steps():
            self._select()
        return loss

    @torch.no_grad()
    def _select(self) -> None:
        m, t = self.model, self.task.index
        sel = selected_units([w.data for w in m.weights], m.head_w[-1].data)
        masks = {}
        for l, (w, b) in enumerate(zip(m.weights, m.biases)):
            rows = sel[l] & (m.ts[l] <= t)
            cols = torch.ones(w.shape[1], dtype=torch.bool, device=w.device) if l == 0 else sel[l - 1]
            masks[w] = rows[:, None] & cols[None, :]
            masks[b] = rows.clone()
        masks[m.head_w[-1]] = self._full(m.head_w[-1], True)
        masks[m.head_b[-1]] = self._full(m.head_b[-1], True)
        self._set_masks(masks)

    # ---- growing
    @torch.no_grad()
    def _add_units(self, l: int, rows: torch.Tensor, bias: torch.Tensor, out_cols: torch.Tensor, t: int) -> None:
        """Append units to hidden layer l: incoming `rows` [k, in], `bias` [k], outgoing `out_cols`
        [next out, k] (the next layer's, or task t's head for the last layer)."""
        m = self.model
        k = len(bias)
        m.weights[l] = nn.Parameter(torch.cat([m.weights[l].data, rows]))
        m.biases[l] = nn.Parameter(torch.cat([m.biases[l].data, bias]))
        m.ts[l] = torch.cat([m.ts[l], torch.full((k,), t, dtype=torch.long, device=m.ts[l].device)])
        if l + 1 < len(m.weights):
            m.weights[l + 1] = nn.Parameter(torch.cat([m.weights[l + 1].data, out_cols], 1))
            self.start[l + 1] = torch.cat([self.start[l + 1], out_cols], 1)
        else:
            m.head_w[t] = nn.Parameter(torch.cat([m.head_w[t].data, out_cols], 1))
        self.start[l] = torch.cat([self.start[l], rows])

    def _new_unit_masks(self, n_old: list[int]) -> dict:
        """Only the units past n_old[l] (their incoming weights, bias and outgoing weights) and the head."""
        m = self.model
        masks = {}
        for l, (w, b) in enumerate(zip(m.weights, m.biases)):
            r = torch.zeros(w.shape[0], dtype=torch.bool, device=w.device)
            r[n_old[l]:] = True
            mw = r[:, None].expand_as(w).clone()
            if l > 0:
                mw[:, n_old[l - 1]:] = True
            masks[w], masks[b] = mw, r
        hw = m.head_w[-1]
        masks[hw] = self._full(hw, True)
        masks[m.head_b[-1]] = self._full(m.head_b[-1], True)
        return masks

    @torch.no_grad()
    def _group_prox(self, n_old: list[int], step: float) -> None:
        for l, w in enumerate(self.model.weights):
            g = w.data[n_old[l]:]
            norm = g.norm(dim=1, keepdim=True)
            w.data[n_old[l]:] = g * torch.clamp(1 - step / norm.clamp_min(1e-12), min=0.0)

    @torch.no_grad()
    def _drop_dead(self, n_old: list[int], t: int) -> int:
        m = self.model
        dropped = 0
        for l in range(len(m.weights)):
            keep = torch.ones(m.weights[l].shape[0], dtype=torch.bool, device=m.weights[l].device)
            keep[n_old[l]:] = m.weights[l].data[n_old[l]:].norm(dim=1) > 0
            dropped += int((~keep).sum())
            m.weights[l] = nn.Parameter(m.weights[l].data[keep])
            m.biases[l] = nn.Parameter(m.biases[l].data[keep])
            m.ts[l] = m.ts[l][keep]
            self.start[l] = self.start[l][keep]
            if l + 1 < len(m.weights):
                m.weights[l + 1] = nn.Parameter(m.weights[l + 1].data[:, keep])
                self.start[l + 1] = self.start[l + 1][:, keep]
            else:
                m.head_w[t] = nn.Parameter(m.head_w[t].data[:, keep])
        return dropped

    @torch.no_grad()
    def _task_loss_on(self, data: TaskData, t: int, limit: int = 1000) -> float:
        x = self.ctx.adapter(self.to_unit(data.images[:limit]))
        return float(self.task_loss(x, data.labels[:limit].to(self.ctx.device), t))

    def _train_new_units(self, data, t, n_old, on_step, group: bool) -> None:
        self._set_masks(self._new_unit_masks(n_old))
        m = self.model
        lr = self.config.lr
        after = (lambda: self._group_prox(n_old, lr * self.config.group_l1)) if group else None
        self.fit(data, t, self.config.expand_epochs, [*m.weights, *m.biases, m.head_w[t], m.head_b[t]],
                 on_step, after=after)

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        t, c, m = task.index, self.config, self.model
        if t == 0:
            return
        if self.steps_in_task < self.select_steps():  # a task shorter than the selection phase
            self._select()
        expanded = 0
        if self._task_loss_on(data, t) > c.tau:
            n_old = [w.shape[0] for w in m.weights]
            for l in range(len(m.weights)):
                w = m.weights[l]
                rows = nn.Linear(w.shape[1], c.expand).weight.detach().to(w) * 0.5
                nxt = m.weights[l + 1] if l + 1 < len(m.weights) else m.head_w[t]
                out = torch.randn(nxt.shape[0], c.expand, device=w.device) * 0.01
                self._add_units(l, rows, torch.zeros(c.expand, device=w.device), out, t)
            self._train_new_units(data, t, n_old, on_step, group=True)
            expanded = sum(c.expand for _ in m.weights) - self._drop_dead(n_old, t)
        # split / duplicate drifted units
        n_split = 0
        with torch.no_grad():
            n_old = [w.shape[0] for w in m.weights]
            for l in range(len(m.weights)):
                w = m.weights[l]
                n_cols = self.start[l].shape[1]
                old_units = (m.ts[l] < t).nonzero().flatten()
                drift = (w.data[old_units, :n_cols] - self.start[l][old_units]).norm(dim=1)
                units = old_units[drift > c.sigma]
                if len(units) == 0:
                    continue
                rows = w.data[units].clone()
                w.data[units, :n_cols] = self.start[l][units]  # the original gets its old weights back
                bias = m.biases[l].data[units].clone()
                nxt = m.weights[l + 1] if l + 1 < len(m.weights) else m.head_w[t]
                out = nxt.data[:, units].clone()
                if l + 1 == len(m.weights):
                    m.head_w[t].data[:, units] = 0  # task t reads the copy, not the restored original
                self._add_units(l, rows, bias, out, t)
                n_split += len(units)
        if n_split:
            self._train_new_units(data, t, n_old, on_step, group=False)
        self.stats["expanded"].append(expanded)
        self.stats["split"].append(n_split)

    def model_size(self) -> dict:
        m = self.model
        ws = [*m.weights, *m.head_w]
        nz = sum(int((w != 0).sum()) for w in ws) + sum(b.numel() for b in [*m.biases, *m.head_b])
        total = sum(w.numel() for w in ws) + sum(b.numel() for b in [*m.biases, *m.head_b])
        return {"parameters": nz, "allocated": total, "units": [w.shape[0] for w in m.weights],
                "expanded": list(self.stats["expanded"]), "split": list(self.stats["split"])}
