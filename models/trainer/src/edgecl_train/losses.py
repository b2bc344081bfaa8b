"""Supervised contrastive loss (Khosla et al. 2020), as SCR uses it.

For each anchor i over all views: -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) ),
P(i) = the other samples and views with i's label; the loss is the mean over anchors.
"""

from __future__ import annotations

import torch


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """z: [N, V, D] L2-normalised projections (V views of N samples); labels: [N]."""
    if z.dim() != 3:
        raise ValueError(f"z must be [N, views, dim], got {tuple(z.shape)}")
    n, v, _ = z.shape
    flat = torch.cat(torch.unbind(z, dim=1), dim=0).float()  # [V*N, D], view-major
    lab = labels.repeat(v)
    sim = flat @ flat.T / temperature
    self_mask = torch.eye(n * v, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (lab[:, None] == lab[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    if bool((n_pos == 0).any()):
        raise ValueError("an anchor has no positive; use at least two views")
    loss = -(log_prob.masked_fill(~pos, 0.0).sum(1) / n_pos)
    return loss.mean()
