"""ABD, Always Be Dreaming (Smith et al., ICCV 2021): data-free class-incremental learning by model inversion.

Nothing of a past task is kept but the model. After each task (except the last) a generator (noise ->
image in the model's normalised input space) is trained to invert the frozen model just trained
(`GeneratorTrainer`); the same generator and its Adam optimiser carry on from task to task, as the
official code (GT-RIPL/AlwaysBeDreaming-DFCIL, `learners/datafree.py`, `datafree_helper.py`). Its four
losses, summed with the official weights (`deep_inv_params 1e-3 5e1 1e-3 1e3 1`):
- content: cross-entropy of the frozen model's logits / `content_temp` (1000) against their own argmax,
  over the classes seen (`content_loss`), weight 1;
- label diversity: 1 + sum_c p_c log p_c / log K, p the batch's mean softmax over the K classes seen (0
  when the batch covers the classes uniformly; `diversity_loss`), weight 1;
- BatchNorm statistics: for every BatchNorm layer, mean over channels of
  log(sigma_batch / sigma_run) - (1 - (sigma_run^2 + (mu_run - mu_batch)^2) / sigma_batch^2) / 2
  (DeepInversion's feature-statistics term as the official hook computes it: KL(N_run || N_batch)),
  averaged over the layers, weight 50 (`bn_statistics_loss`);
- smoothness: mean squared difference between the image and its Gaussian blur (5x5, sigma 1, reflect
  padding 2, the official kernel exp(-((i - 2) / (2 sigma))^2) normalised), weight 1e-3 (`smoothness_loss`).
The generator is the official `CIFAR_GEN` (`Generator`): z (1000) -> linear 128 x (H/4) x (W/4) -> BN ->
x2 upsample -> conv 128 + BN + LeakyReLU -> x2 -> conv 64 + BN + LeakyReLU -> conv C -> tanh -> BN
without affine. It is trained `gen_iters` iterations (official: 10,000) on batches of `gen_batch` (128).

The learner, from the second task on, each step takes the real batch and as many synthetic images
(labels: the frozen model's argmax over the old classes) and optimises, as the official
`AlwaysBeDreaming.update_model`:
- *local* cross-entropy on the real images over the new classes' logits only;
- cross-entropy of the linear head alone (features detached) on real + synthetic, over the classes
  seen, class-balanced: old-class samples weighted |old| / |seen|, new-class ones |new| / |seen| (the
  official weights, applied to both cross-entropies);
- `mu` (0.1) times the importance-weighted feature distillation ||W (f_new(x) - f_old(x))||^2 / |old|,
  W the previous model's linear head over the old classes, on real + synthetic images (the official
  code's `kd_index` covers both halves of the batch; the paper's text speaks of the synthetic data).
The first task is plain cross-entropy. Optimiser defaults: the official configuration (SGD lr 0.1,
momentum 0.9, weight decay 2e-4; its step schedule at epochs 100/150/200 of 250 is not reproduced:
use `--schedule cosine`). Evaluation: argmax of the head over the classes seen. Export: encoder + head.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import Task
from .base import Options, StepCallback, Strategy, TaskData


class Generator(nn.Module):
    """The official CIFAR_GEN (models/generator.py, after Fang et al.'s data-free adversarial distillation)."""

    def __init__(self, z_dim: int = 1000, channels: int = 3, size: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.init_size = size // 4
        self.l1 = nn.Sequential(nn.Linear(z_dim, 128 * self.init_size**2))
        self.conv_blocks0 = nn.Sequential(nn.BatchNorm2d(128))
        self.conv_blocks1 = nn.Sequential(nn.Conv2d(128, 128, 3, stride=1, padding=1), nn.BatchNorm2d(128, 0.8),
                                          nn.LeakyReLU(0.2, inplace=True))
        self.conv_blocks2 = nn.Sequential(nn.Conv2d(128, 64, 3, stride=1, padding=1), nn.BatchNorm2d(64, 0.8),
                                          nn.LeakyReLU(0.2, inplace=True),
                                          nn.Conv2d(64, channels, 3, stride=1, padding=1), nn.Tanh(),
                                          nn.BatchNorm2d(channels, affine=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.l1(z).view(z.shape[0], 128, self.init_size, self.init_size)
        img = F.interpolate(self.conv_blocks0(out), scale_factor=2)
        img = F.interpolate(self.conv_blocks1(img), scale_factor=2)
        return self.conv_blocks2(img)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = self.l1[0].weight.device
        z = torch.randn(n, self.z_dim, generator=generator).to(dev)
        return self(z)


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """The official 2-D kernel: prod over axes of exp(-((i - (size-1)/2) / (2 sigma))^2), normalised to sum 1."""
    i = torch.arange(size, dtype=torch.float32)
    k1 = torch.exp(-(((i - (size - 1) / 2) / (2 * sigma)) ** 2)) / (sigma * math.sqrt(2 * math.pi))
    k = k1[:, None] * k1[None, :]
    return k / k.sum()


def smoothness_loss(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """mean((x - blur(x))^2), blur = depthwise conv with `kernel` after reflect padding (size // 2)."""
    c, p = x.shape[1], kernel.shape[-1] // 2
    w = kernel.to(x)[None, None].repeat(c, 1, 1, 1)
    blurred = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w, groups=c)
    return F.mse_loss(x, blurred)


def content_loss(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of logits / T against the argmax of the logits."""
    return F.cross_entropy(logits / temperature, logits.argmax(1))


def diversity_loss(logits: torch.Tensor) -> torch.Tensor:
    """1 + sum_c p_c log p_c / log K, p = mean over the batch of softmax(logits) (K = logits' width)."""
    p = F.softmax(logits, dim=1).mean(0)
    # log of p clamped at 1e-30: 0 log 0 = 0 (the limit) with a finite gradient, where the official
    # p * log(p) gives NaN once a class gets probability 0 in float32
    return 1.0 + (p * torch.log(p.clamp_min(1e-30))).sum() / math.log(logits.shape[1])


def bn_statistics_loss(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
    """DeepInversion's term for one BatchNorm layer's input x [N, C, ...] (the official hook's formula)."""
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dims)
    var = x.transpose(0, 1).reshape(x.shape[1], -1).var(1, unbiased=False) + 1e-8
    rv = running_var.to(var) + 1e-8
    return (torch.log(var.sqrt() / rv.sqrt()).mean()
            - 0.5 * (1.0 - (rv + (running_mean.to(var) - mean) ** 2) / var).mean())


def importance_weighted_kd(f_new: torch.Tensor, f_old: torch.Tensor, head: nn.Linear,
                           old_classes: list[int]) -> torch.Tensor:
    """mean over samples of ||W (f_new - f_old)||^2 / |old|, W = the previous head's rows of the old classes
    (the bias cancels: computed as the official code, head(f_new) - head(f_old))."""
    a = head(f_new)[:, old_classes]
    b = head(f_old)[:, old_classes]
    return ((a - b) ** 2).sum(1).mean() / len(old_classes)


@dataclass(frozen=True)
class InversionOptions(Options):
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    mu: float = 0.1  # weight of the distillation term
    gen_iters: int = 10000  # generator iterations per task (official); scale down on a CPU
    gen_batch: int = 128
    gen_lr: float = 1e-3
    z_dim: int = 1000
    content_weight: float = 1.0
    content_temp: float = 1e3
    bn_weight: float = 50.0
    smooth_weight: float = 1e-3


class GeneratorTrainer:
    """Trains the generator against a frozen model (`solver`: normalised images -> logits) over `classes`."""

    def __init__(self, gen: Generator, opt: torch.optim.Optimizer, config: InversionOptions) -> None:
        self.gen, self.opt, self.config = gen, opt, config
        self.kernel = gaussian_kernel(5, 1.0)
        self.history: list[dict] = []

    def train(self, solver: nn.Module, classes: list[int], iters: int,
              on_step: StepCallback | None = None, rng: torch.Generator | None = None) -> dict:
        c = self.config
        solver.eval()
        inputs: list[torch.Tensor] = []
        bns = [m for m in solver.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
        hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: inputs.__setitem__(i, inp[0]))
                 for i, m in enumerate(bns)]
        first = last = None
        self.gen.train()
        try:
            for it in range(iters):
                inputs[:] = [None] * len(bns)
                x = self.gen.sample(c.gen_batch, rng)
                logits = solver(x)[:, classes]
                bn = (sum(bn_statistics_loss(inp, m.running_mean, m.running_var) for inp, m in zip(inputs, bns))
                      / len(bns)) if bns else torch.zeros((), device=x.device)
                loss = (c.content_weight * content_loss(logits, c.content_temp) + diversity_loss(logits)
                        + c.bn_weight * bn + c.smooth_weight * smoothness_loss(x, self.kernel))
                self.opt.zero_grad(set_to_none=True)
                solver.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                rec = {"loss": float(loss.detach()), "bn": float(bn.detach())}
                first = first or rec
                last = rec
                if on_step is not None:
                    on_step(rec["loss"])
        finally:
            for h in hooks:
                h.remove()
            solver.zero_grad(set_to_none=True)
        self.gen.eval()
        out = {"iters": iters, "first": first, "last": last}
        self.history.append(out)
        return out


class _Inversion(Strategy):
    """What ABD and DeepInversion share: the generator, the frozen previous model, synthetic batches."""

    Options = InversionOptions
    supports_ddp = False

    def __init__(self, ctx, config: InversionOptions) -> None:
        super().__init__(ctx, config)
        spec = ctx.encoder.spec
        self.gen = Generator(config.z_dim, spec.channels, spec.height).to(ctx.device)
        self.gen_trainer = GeneratorTrainer(self.gen, torch.optim.Adam(self.gen.parameters(), lr=config.gen_lr),
                                            config)
        self.old_model: nn.Module | None = None
        self.old_classes: list[int] = []
        self.rng = torch.Generator().manual_seed(int(ctx.generator.initial_seed()) + 1)

    def before_task(self, task: Task) -> None:
        super().before_task(task)
        self.new_classes = list(task.classes)

    def solver(self, model: nn.Module) -> nn.Module:
        class _Logits(nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(x)[1]

        return _Logits(model)

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        self.old_model = copy.deepcopy(self.model).eval()
        for p in self.old_model.parameters():
            p.requires_grad_(False)
        self.old_classes = list(self.seen_classes)
        if len(self.seen_classes) < self.ctx.n_classes:  # the official code skips it after the last task
            self.gen_trainer.train(self.solver(self.old_model), self.old_classes, self.config.gen_iters,
                                   on_step, self.rng)

    @torch.no_grad()
    def synthetic(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n generated images (normalised space), their labels (the old model's argmax over the old classes)
        and the old model's logits over the old classes."""
        self.gen.eval()
        x = self.gen.sample(n, self.rng)
        _, logits = self.old_model(x)
        old = logits[:, self.old_classes]
        y = torch.tensor(self.old_classes, device=x.device)[old.argmax(1)]
        return x, y, old

    def seen_pos(self, y: torch.Tensor, classes: list[int]) -> torch.Tensor:
        c = torch.tensor(classes, device=y.device)
        return (y[:, None] == c[None, :]).float().argmax(1)

    @torch.no_grad()
    def scores(self, x_u8: torch.Tensor) -> torch.Tensor:
        _, logits = self.model(self.ctx.adapter(self.to_unit(x_u8)))
        out = torch.full_like(logits, float("-inf"))
        seen = torch.tensor(self.seen_classes, device=logits.device)
        out[:, seen] = logits[:, seen]
        return out.float().cpu()

    def model_size(self) -> dict:
        return {"parameters": int(sum(p.numel() for p in self.model.parameters())),
                "generator_parameters": int(sum(p.numel() for p in self.gen.parameters())),
                "generator": self.gen_trainer.history[-1] if self.gen_trainer.history else None}


class ABD(_Inversion):
    name = "abd"

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        y = y.to(self.ctx.device)
        x = self.ctx.adapter(self.to_unit(x_u8))
        seen = self.seen_classes
        if self.old_model is None:
            _, logits = self.train_model(x)
            loss = F.cross_entropy(logits[:, seen].float(), self.seen_pos(y, seen))
            self.step(loss)
            return float(loss.detach())
        n = len(y)
        xs, ys, _ = self.synthetic(n)
        x_com, y_com = torch.cat([x, xs]), torch.cat([y, ys])
        feats = self.model.encoder(x_com)
        logits = self.model.head(feats)
        rnt = len(self.old_classes) / len(seen)
        is_old = torch.isin(y_com, torch.tensor(self.old_classes, device=y.device))
        w = torch.where(is_old, torch.full_like(y_com, 0, dtype=torch.float32) + rnt,
                        torch.full_like(y_com, 0, dtype=torch.float32) + (1 - rnt))
        local = (F.cross_entropy(logits[:n, self.new_classes].float(), self.seen_pos(y, self.new_classes),
                                 reduction="none") * w[:n]).mean()
        ft = (F.cross_entropy(self.model.head(feats.detach())[:, seen].float(), self.seen_pos(y_com, seen),
                              reduction="none") * w).mean()
        with torch.no_grad():
            f_old = self.old_model.encoder(x_com)
        kd = importance_weighted_kd(feats, f_old, self.old_model.head, self.old_classes)
        loss = local + ft + self.config.mu * kd
        self.step(loss)
        return float(loss.detach())
