"""GEM, gradient episodic memory (Lopez-Paz & Ranzato, NeurIPS 2017).

The memory keeps samples with the task they came from. Per stream batch: the gradient g of the stream
loss, and one gradient g_k per earlier task k, of the cross-entropy on all of task k's stored samples.
If some g . g_k < 0, the step uses the solution of the quadratic programme
    min_z 1/2 ||z - g||^2   s.t.  G z >= 0   (the rows of G are the g_k),
solved through its dual, as the paper does: min_v 1/2 v^T G G^T v + (G g)^T v  s.t. v >= margin, then
z = g + G^T v. The dual has one variable per earlier task, so `solve_nonneg_qp` solves it EXACTLY by
checking the KKT conditions of every active set (2^t of them: 16 for 5 tasks), in float64.
Official defaults: margin ("memory_strength") 0.5, eps 1e-3 added to the diagonal of G G^T.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .base import Options, Strategy


def solve_nonneg_qp(P: np.ndarray, q: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """argmin_v 1/2 v^T P v + q^T v subject to v >= lower, for a positive-definite P (t <= 16).

    With u = v - lower (u >= 0, linear term q' = q + P lower), the optimum is the unique u whose free set S
    solves P_SS u_S = -q'_S with u_S >= 0 and whose bound variables have (P u + q')_i >= 0."""
    t = len(q)
    if t > 16:
        raise ValueError(f"the exact active-set search is for at most 16 constraints, got {t}")
    qp = q + P @ lower
    best = None
    for k in range(t + 1):
        for free in itertools.combinations(range(t), k):
            u = np.zeros(t)
            f = list(free)
            if f:
                u[f] = np.linalg.solve(P[np.ix_(f, f)], -qp[f])
                if (u[f] < -1e-12).any():
                    continue
            grad = P @ u + qp
            bound = [i for i in range(t) if i not in free]
            if bound and (grad[bound] < -1e-10).any():
                continue
            best = u
            break
        if best is not None:
            break
    if best is None:  # numerically impossible for a PD P; keep the projection safe
        raise RuntimeError("no KKT point found")
    return np.maximum(best, 0.0) + lower


def gem_project(g: torch.Tensor, G: torch.Tensor, margin: float = 0.5, eps: float = 1e-3) -> torch.Tensor:
    """GEM's projection of g given the earlier tasks' gradients G ([t, P]); returns g unchanged when no
    constraint is violated."""
    if G.numel() == 0 or bool((G @ g >= 0).all()):
        return g
    Gd, gd = G.double().cpu().numpy(), g.double().cpu().numpy()
    P = Gd @ Gd.T
    P = 0.5 * (P + P.T) + eps * np.eye(len(P))
    v = solve_nonneg_qp(P, Gd @ gd, np.full(len(P), margin))
    return torch.from_numpy(gd + Gd.T @ v).to(g.dtype).to(g.device)


@dataclass(frozen=True)
class GEMOptions(Options):
    margin: float = 0.5  # the paper's memory_strength: lower bound on the dual variables
    max_per_task: int = 256  # stored samples per earlier task used for its gradient (GEM: 256 per task)


class GEM(Strategy):
    name = "gem"
    needs_memory = True
    Options = GEMOptions
    supports_ddp = False

    def __init__(self, ctx, config: GEMOptions) -> None:
        super().__init__(ctx, config)
        self.n_projected = 0

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        _, logits = self.forward_train(self.to_unit(x_u8))
        loss = self.ce(logits, y.to(self.ctx.device))
        self.step(loss)
        self.remember(x_u8, y)
        return float(loss.detach())

    def after_backward(self) -> None:
        assert self.ctx.memory is not None and self.task is not None
        if self.task.index == 0:
            return
        tids = self.ctx.memory.task_ids()
        old = sorted(t for t in set(tids.tolist()) if t != self.task.index)
        if not old:
            return
        g = self.flat_grad()
        mx_all, my_all = self.ctx.memory.all()
        rows = []
        for t in old:
            idx = torch.nonzero(tids == t).flatten()[: self.config.max_per_task]
            self.opt.zero_grad(set_to_none=True)
            _, lg = self.forward_train(self.to_unit(mx_all[idx]))
            self.ce(lg, my_all[idx].to(self.ctx.device)).backward()
            rows.append(self.flat_grad())
        G = torch.stack(rows)
        if bool((G @ g < 0).any()):
            self.n_projected += 1
        self.set_flat_grad(gem_project(g, G, self.config.margin))
