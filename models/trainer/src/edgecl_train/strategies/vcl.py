"""VCL, variational continual learning (Nguyen et al., ICLR 2018): a mean-field Gaussian Bayesian network,
shared hidden layers and one (Bayesian) head per task, as the paper's Split MNIST model.

Every weight w has q(w) = N(mu, sigma^2) (log sigma^2 stored, initialised at -6: nearly the mean).
Task t minimises, per batch,
    E_q[-log p(y | x, w)]  +  KL(q_t || q_{t-1}) / N_t                  (`gaussian_kl`)
the expectation by `train_samples` Monte Carlo draws with the local reparameterisation trick (the
pre-activations are sampled: mean x mu, variance x^2 sigma^2), N_t the task's training-set size. The
prior q_0 is N(0, 1); after each task the posterior becomes the next prior, so a weight with a small
learned variance (an important one) is held strongly and a vague one can move.

Coreset (`coreset` > 0: samples kept per task, random): before every evaluation a copy of the
posterior is trained on the union of the coresets (the same objective, prior = the current posterior,
`coreset_epochs` passes), and the copy predicts; the running posterior is unchanged. The paper takes the
coreset out of the task's training data beforehand; here it is drawn from the task's data at its end
(the run loop streams the data before the method sees it), so the coreset points were also trained on.
Prediction: the mean of `test_samples` sampled softmaxes. Export: the means (deterministic network).
(Not done: the paper's initialisation of the first task's means by a maximum-likelihood run.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, TaskData
from .taskil import TaskILStrategy, count


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)), summed over all elements."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum()


class BayesLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int, init_logvar: float = -6.0) -> None:
        super().__init__()
        lin = nn.Linear(n_in, n_out)
        self.w_mu = nn.Parameter(lin.weight.detach().clone())
        self.b_mu = nn.Parameter(lin.bias.detach().clone())
        self.w_logvar = nn.Parameter(torch.full((n_out, n_in), init_logvar))
        self.b_logvar = nn.Parameter(torch.full((n_out,), init_logvar))
        # the prior (the previous posterior); N(0, 1) before the first task
        self.register_buffer("pw_mu", torch.zeros(n_out, n_in))
        self.register_buffer("pb_mu", torch.zeros(n_out))
        self.register_buffer("pw_logvar", torch.zeros(n_out, n_in))
        self.register_buffer("pb_logvar", torch.zeros(n_out))

    def forward(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        mean = F.linear(x, self.w_mu, self.b_mu)
        if not sample:
            return mean
        var = F.linear(x * x, self.w_logvar.exp(), self.b_logvar.exp())
        return mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean)

    def kl(self) -> torch.Tensor:
        return (gaussian_kl(self.w_mu, self.w_logvar, self.pw_mu, self.pw_logvar)
                + gaussian_kl(self.b_mu, self.b_logvar, self.pb_mu, self.pb_logvar))

    @torch.no_grad()
    def posterior_to_prior(self) -> None:
        self.pw_mu.copy_(self.w_mu)
        self.pb_mu.copy_(self.b_mu)
        self.pw_logvar.copy_(self.w_logvar)
        self.pb_logvar.copy_(self.b_logvar)


@dataclass(frozen=True)
class VCLOptions(Options):
    width: int = 100  # the paper's Split MNIST network: two hidden layers of 256; 100 here (CPU)
    depth: int = 2
    train_samples: int = 1
    test_samples: int = 10
    coreset: int = 0  # samples kept per task (0: VCL without coreset)
    coreset_epochs: int = 10


class VCLModel(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([BayesLinear(in_features if l == 0 else width, width) for l in range(depth)])
        self.heads = nn.ModuleList()


class VCL(TaskILStrategy):
    name = "vcl"
    Options = VCLOptions

    def __init__(self, ctx, config: VCLOptions) -> None:
        super().__init__(ctx, config)
        self.coreset_x: list[torch.Tensor] = []
        self.coreset_y: list[torch.Tensor] = []
        self.eval_model: nn.Module | None = None

    def build_model(self) -> nn.Module:
        return VCLModel(self.in_features(), self.config.width, self.config.depth)

    def setup_task(self, task: Task) -> None:
        self.model.heads.append(BayesLinear(self.config.width, len(task.classes)))
        self.n_task = max(1, len(task.train_idx))

    def trainable(self) -> list[nn.Parameter]:
        return [*self.model.layers.parameters(), *self.model.heads[-1].parameters()]

    def _features(self, model: nn.Module, x: torch.Tensor, sample: bool) -> torch.Tensor:
        h = x.flatten(1)
        for layer in model.layers:
            h = F.relu(layer(h, sample))
        return h

    def task_features(self, x, t, deterministic=False):
        return self._features(self.model, x, not deterministic)

    def task_head(self, f, t, deterministic=False):
        return self.model.heads[t](f, not deterministic)

    def elbo_loss(self, model: nn.Module, x: torch.Tensor, y_local: torch.Tensor, t: int, n_data: int,
                  heads: list[int]) -> torch.Tensor:
        nll = 0.0
        for _ in range(self.config.train_samples):
            nll = nll + F.cross_entropy(model.heads[t](self._features(model, x, True), True), y_local)
        kl = sum(l.kl() for l in model.layers) + sum(model.heads[h].kl() for h in heads)
        return nll / self.config.train_samples + kl / n_data

    def task_loss(self, x, y, t):
        return self.elbo_loss(self.model, x, self.local_labels(y, t), t, self.n_task, [t])

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        for l in self.model.layers:
            l.posterior_to_prior()
        self.model.heads[task.index].posterior_to_prior()
        if self.config.coreset > 0:
            idx = torch.randperm(len(data.labels), generator=self.ctx.generator)[: self.config.coreset]
            self.coreset_x.append(data.images[idx])
            self.coreset_y.append(data.labels[idx])

    def prepare_eval(self) -> None:
        self.model.eval()
        self.eval_model = self.model
        if not self.coreset_x:
            return
        # a copy of the posterior, trained on the union of the coresets (prior = the current posterior)
        m = copy.deepcopy(self.model)
        for l in [*m.layers, *m.heads]:
            l.posterior_to_prior()
        opt = self.make_optimizer(m.parameters())
        n = sum(len(y) for y in self.coreset_y)
        m.train()
        with torch.enable_grad():  # the run loop evaluates under no_grad
            self._fit_coreset(m, opt, n)
        m.eval()
        self.eval_model = m

    def _fit_coreset(self, m: nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
        for _ in range(self.config.coreset_epochs):
            for t, (cx, cy) in enumerate(zip(self.coreset_x, self.coreset_y)):
                x = self.ctx.adapter(self.to_unit(cx))
                loss = self.elbo_loss(m, x, self.local_labels(cy.to(self.ctx.device), t), t, n, [t])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    @torch.no_grad()
    def eval_logits(self, x: torch.Tensor, t: int) -> torch.Tensor:
        m = self.eval_model or self.model
        p = 0.0
        for _ in range(self.config.test_samples):
            p = p + F.softmax(m.heads[t](self._features(m, x, True), True), 1)
        return (p / self.config.test_samples).clamp_min(1e-12).log()

    def model_size(self) -> dict:
        # a posterior stores a mean and a variance per weight; the prior is the previous posterior
        n = count(p for name, p in self.model.named_parameters() if "mu" in name)
        return {"parameters": 2 * n, "weights": n, "coreset_images": sum(len(y) for y in self.coreset_y)}


__all__ = ["VCL", "BayesLinear", "gaussian_kl"]
