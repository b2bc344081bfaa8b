"""DER, dynamically expandable representation (Yan et al., CVPR 2021).

Per task t a new feature extractor F_t joins the model, initialised from F_{t-1} (a deep copy); the old
extractors are frozen (no gradient, BatchNorm in eval mode: their weights and statistics stay
bit-identical). The *super-feature* is the concatenation [F_0(x), ..., F_t(x)]; one linear classifier
over it scores every class seen (its old columns are copied from the previous classifier, as the official
code's `_add_classes_multi_fc`). Losses, per step of the new task's images plus exemplars:
- cross-entropy of the classifier over the classes seen;
- `aux_weight` times the cross-entropy of the *auxiliary classifier* on F_t(x) alone, with |new classes|
  + 1 outputs: every old class is label 0, new class c is 1 + its position in the task (the official
  code's `aux_n+1`); only from the second task on, as the official code;
- `sparsity` times the sparsity loss of the channel masks (below), when `masks` is on.

Channel masks (paper, Sec. 3.3; the official code Rhyssiyan/DER-ClassIL.pytorch has none). How we
follow the paper:
- a mask m = sigmoid(s * e) per channel, e learned (initialised at `mask_init`, all channels open), on
  the new extractor only. The paper masks every convolution's output channels; we mask the channels
  that can be removed without touching a residual stream: each ResNet block's inner channels (conv1 ->
  bn1 -> mask -> ReLU -> conv2) and the extractor's output channels (its feature dimension); for encoders
  without blocks (the MLP), the output channels only. A residual stream channel is the sum of a
  convolution and the shortcut, so masking one convolution's output there would not free the channel.
- s is annealed within every epoch, s = 1/s_max + (s_max - 1/s_max)(b - 1)/(B - 1), b the batch index
  and B the batches per epoch (the paper's schedule, from HAT); s = s_max at evaluation.
- gradient compensation: de = dm * sigmoid'(e) (the gradient as if s were 1; the paper's compensated
  gradient, which keeps e trainable when s is large and sigmoid(s e) saturates) (`CompensatedMask`).
- sparsity loss L_S = sum_l K_l ||m_{l-1}||_1 ||m_l||_1 / sum_l K_l c_{l-1} c_l over the layers next to
  a mask (K_l the kernel's spatial size, c the channel counts; an unmasked side counts all its channels):
  the soft fraction of those layers' weights still in use (`sparsity_loss`).
- pruning, after the task: channels with sigmoid(s_max e) < 0.5 (e <= 0) are removed: a block's conv1
  rows, bn1 entries and conv2 columns are cut out (the module really shrinks), dropped output channels
  leave the super-feature and the classifier's columns; the kept ones are multiplied by exactly 1.
  `-o masks=false` trains DER without masks (the official code).
The paper gives neither s_max nor the sparsity weight in what we read; `s_max` 400 is HAT's value, and
`sparsity` is ours (see the README for the setting used).

After each task from the second on: *class-balanced classifier re-training*: the classifier is
re-initialised and trained `ft_epochs` (30) epochs, SGD lr `ft_lr` (0.1) momentum 0.9, weight decay
5e-4, lr x 0.1 at epoch `ft_decay_epoch` (15), batch 128, on cross-entropy of logits / `ft_temperature`
(5), over a balanced set: the stored exemplars of the old classes and, for each new class, as many of
its images as an old class has exemplars (the official `decouple` / `balanced_train`). The extractors
are frozen and in eval mode then, so their super-features are computed once and cached (exact: no
augmentation). Exemplars: herding over the super-features (memory `herding` selector, size // classes
seen per class). Optimiser defaults: the official configuration (SGD lr 0.1, momentum 0.9, weight
decay 5e-4). Not reproduced: the official warm-up (10 epochs, then the classifiers re-initialised) and
its multi-step schedule (use `--schedule cosine`).

Export: the whole super-feature extractor (every task's extractor, pruned) + the classifier, one ONNX;
the card's recipe lists which tasks (and classes) the extractors hold and each one's feature width.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..memory import Selector
from ..scenario import Task
from .base import Options, StepCallback, Strategy, TaskData


@dataclass(frozen=True)
class DEROptions(Options):
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    mem_batch: int = 0  # exemplars per step; 0 = in proportion to memory / task size (one pass over both per epoch)
    aux_weight: float = 1.0  # lambda_a
    masks: bool = True
    sparsity: float = 1.0  # lambda_s
    s_max: float = 400.0
    mask_init: float = 1.0
    ft_epochs: int = 30
    ft_lr: float = 0.1
    ft_temperature: float = 5.0
    ft_decay_epoch: int = 15
    ft_batch: int = 128


class _CompensatedSigmoid(torch.autograd.Function):
    """m = sigmoid(s e); backward: dL/de = dL/dm * sigmoid(e) (1 - sigmoid(e)) (the compensated gradient)."""

    @staticmethod
    def forward(ctx, e: torch.Tensor, s: float) -> torch.Tensor:
        ctx.save_for_backward(e)
        return torch.sigmoid(s * e)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (e,) = ctx.saved_tensors
        sg = torch.sigmoid(e)
        return grad * sg * (1 - sg), None


class CompensatedMask(nn.Module):
    """A channel mask sigmoid(s * e); `s` is set by the strategy (annealed in training, s_max to evaluate)."""

    def __init__(self, n: int, init: float, s: float) -> None:
        super().__init__()
        self.e = nn.Parameter(torch.full((n,), float(init)))
        self.s = s

    def forward(self) -> torch.Tensor:
        return _CompensatedSigmoid.apply(self.e, self.s)

    def keep(self) -> torch.Tensor:
        """Indices of the channels pruning keeps (sigmoid(s_max e) >= 0.5, i.e. e > 0); at least one."""
        k = torch.nonzero(self.e.detach() > 0).flatten()
        return k if len(k) else self.e.detach().argmax().view(1)


def sparsity_loss(layers: list[tuple[int, torch.Tensor | int, torch.Tensor | int]]) -> torch.Tensor:
    """L_S = sum_l K_l |m_in|_1 |m_out|_1 / sum_l K_l c_in c_out. Each layer is (K, in, out) where in / out
    is a mask tensor (its L1 norm; its length is the channel count) or an int (an unmasked side)."""
    num, den = 0.0, 0.0
    for k, a, b in layers:
        na, ca = (a.abs().sum(), len(a)) if torch.is_tensor(a) else (float(a), a)
        nb, cb = (b.abs().sum(), len(b)) if torch.is_tensor(b) else (float(b), b)
        num = num + k * na * nb
        den += k * ca * cb
    return num / den


class Extractor(nn.Module):
    """One task's extractor: an encoder, its masks (training), and `keep` (output channels kept)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_mask: CompensatedMask | None = None
        self.register_buffer("keep", torch.arange(encoder.dim))

    @property
    def dim(self) -> int:
        return len(self.keep)

    def blocks(self) -> list[nn.Module]:
        return list(self.encoder.blocks()) if hasattr(self.encoder, "blocks") else []

    def add_masks(self, init: float, s: float) -> None:
        for b in self.blocks():
            b.inner_mask = CompensatedMask(b.conv1.out_channels, init, s)
        self.out_mask = CompensatedMask(self.encoder.dim, init, s)

    def masks(self) -> list[CompensatedMask]:
        ms = [b.inner_mask for b in self.blocks() if b.inner_mask is not None]
        return ms + ([self.out_mask] if self.out_mask is not None else [])

    def set_s(self, s: float) -> None:
        for m in self.masks():
            m.s = s

    def mask_layers(self) -> list[tuple[int, torch.Tensor | int, torch.Tensor | int]]:
        """(K, in, out) of every layer next to a mask, for `sparsity_loss`."""
        layers: list = []
        for b in self.blocks():
            m = b.inner_mask()
            layers.append((b.conv1.kernel_size[0] * b.conv1.kernel_size[1], b.conv1.in_channels, m))
            layers.append((b.conv2.kernel_size[0] * b.conv2.kernel_size[1], m, b.conv2.out_channels))
        if self.out_mask is not None:  # the layer that produces the features has a masked output side
            if layers:  # a ResNet: the last block's conv2
                k, inner, _ = layers[-1]
                layers[-1] = (k, inner, self.out_mask())
            else:  # the MLP: its last linear layer
                last = [m for m in self.encoder.modules() if isinstance(m, nn.Linear)][-1]
                layers.append((1, last.in_features, self.out_mask()))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)
        if self.out_mask is not None:
            return f * self.out_mask()[None, :]
        return f.index_select(1, self.keep) if len(self.keep) != f.shape[1] else f

    @torch.no_grad()
    def prune(self) -> dict[str, int]:
        """Binarise the masks and cut the removed channels out; returns channel counts before / after."""
        before = after = 0
        for b in self.blocks():
            if b.inner_mask is None:
                continue
            keep = b.inner_mask.keep()
            before += b.conv1.out_channels
            after += len(keep)
            conv1 = nn.Conv2d(b.conv1.in_channels, len(keep), b.conv1.kernel_size, b.conv1.stride,
                              b.conv1.padding, bias=False)
            conv1.weight.copy_(b.conv1.weight[keep])
            bn1 = nn.BatchNorm2d(len(keep), eps=b.bn1.eps, momentum=b.bn1.momentum).train(b.bn1.training)
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn1, name).copy_(getattr(b.bn1, name)[keep])
            conv2 = nn.Conv2d(len(keep), b.conv2.out_channels, b.conv2.kernel_size, b.conv2.stride,
                              b.conv2.padding, bias=False)
            conv2.weight.copy_(b.conv2.weight[:, keep])
            b.conv1, b.bn1, b.conv2 = conv1.to(b.conv2.weight.device), bn1.to(b.conv2.weight.device), \
                conv2.to(b.conv2.weight.device)
            b.inner_mask = None
        kept_out = torch.arange(self.encoder.dim, device=self.keep.device)
        if self.out_mask is not None:
            kept_out = self.out_mask.keep().to(self.keep.device)
            before += self.encoder.dim
            after += len(kept_out)
            self.out_mask = None
        self.keep = kept_out
        return {"channels_before": before, "channels_after": after}


class DERNet(nn.Module):
    """forward(x) -> (super-feature, logits over all classes)."""

    def __init__(self, first: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.extractors = nn.ModuleList([Extractor(first)])
        self.classifier = nn.Linear(first.dim, n_classes, bias=False)  # official: use_bias False
        self.aux: nn.Linear | None = None
        self.n_classes = n_classes

    @property
    def dim(self) -> int:
        return sum(e.dim for e in self.extractors)

    def super_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(concatenated features, the newest extractor's features)."""
        fs = [e(x) for e in self.extractors]
        return torch.cat(fs, 1), fs[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, _ = self.super_features(x)
        return f, self.classifier(f)

    def expand(self, n_new: int, init: nn.Module | None = None) -> None:
        """Add an extractor initialised from `init` (the previous extractor before pruning; default: a copy
        of the newest), freeze the others, widen the classifier (old columns copied), new auxiliary
        classifier (n_new + 1)."""
        new = Extractor(copy.deepcopy(init if init is not None else self.extractors[-1].encoder))
        for e in self.extractors:
            for p in e.parameters():
                p.requires_grad_(False)
        old = self.classifier
        dev = old.weight.device
        self.extractors.append(new.to(dev))
        self.classifier = nn.Linear(old.in_features + new.dim, self.n_classes, bias=False).to(dev)
        with torch.no_grad():
            self.classifier.weight[:, : old.in_features] = old.weight
        self.aux = nn.Linear(new.dim, n_new + 1).to(dev)

    def train(self, mode: bool = True) -> "DERNet":
        super().train(mode)
        for e in self.extractors[:-1]:  # frozen extractors keep their BatchNorm statistics
            e.train(False)
        return self


def aux_targets(y: torch.Tensor, new_classes: list[int]) -> torch.Tensor:
    """Auxiliary labels: 0 for every old class, 1 + position in `new_classes` for a new class."""
    out = torch.zeros_like(y)
    for i, c in enumerate(new_classes):
        out[y == c] = i + 1
    return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class DER(Strategy):
    name = "der"
    needs_memory = True
    Options = DEROptions
    default_selector = Selector.HERDING
    supports_ddp = False  # the model grows between tasks

    def __init__(self, ctx, config: DEROptions) -> None:
        super().__init__(ctx, config)
        self.tasks_held: list[dict] = []
        self.prune_log: list[dict] = []
        self.params_log: list[dict] = []
        self._unpruned_last: nn.Module | None = None  # the newest extractor before pruning (the next one's init)

    def build_model(self) -> nn.Module:
        return DERNet(self.ctx.encoder, self.ctx.n_classes)

    def _reset_optimizer(self) -> None:
        self.opt = self.make_optimizer([p for p in self.model.parameters() if p.requires_grad])

    def before_task(self, task: Task) -> None:
        net: DERNet = self.model
        if self.task is not None:  # from the second task on: a new extractor
            net.expand(len(task.classes), self._unpruned_last)
        super().before_task(task)
        if self.config.masks:
            net.extractors[-1].add_masks(self.config.mask_init, 1.0 / self.config.s_max)
            net.extractors[-1].to(self.ctx.device)
        self._reset_optimizer()
        self.new_classes = list(task.classes)
        self.old_classes = [c for c in self.seen_classes if c not in task.classes]

    def _anneal(self, n_batch: int) -> None:
        if not self.config.masks:
            return
        per_epoch = max(1, len(self.task.train_idx) // max(1, n_batch))
        b = self.task_step % per_epoch  # 0-based batch index within the epoch
        smax = self.config.s_max
        s = 1.0 / smax + (smax - 1.0 / smax) * b / max(1, per_epoch - 1)
        self.model.extractors[-1].set_s(s)

    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        net: DERNet = self.model
        mem = self.ctx.memory
        self._anneal(len(y))
        k = self.config.mem_batch
        if k == 0 and mem is not None and len(mem):
            k = math.ceil(len(y) * len(mem) / max(1, len(self.task.train_idx)))
        if k and mem is not None and len(mem):
            mx, my = mem.sample(k)
            x_u8, y = torch.cat([x_u8, mx]), torch.cat([y, my])
        net.train()
        y = y.to(self.ctx.device)
        with self.autocast():
            x = self.ctx.adapter(self.to_unit(x_u8))
            f, f_new = net.super_features(x)
            logits = net.classifier(f)
        seen = torch.tensor(self.seen_classes, device=y.device)
        pos = (y[:, None] == seen[None, :]).float().argmax(1)
        loss = F.cross_entropy(logits[:, seen].float(), pos)
        if net.aux is not None:
            loss = loss + self.config.aux_weight * F.cross_entropy(net.aux(f_new).float(),
                                                                   aux_targets(y, self.new_classes))
        if self.config.masks:
            loss = loss + self.config.sparsity * sparsity_loss(net.extractors[-1].mask_layers())
        self.step(loss)
        return float(loss.detach())

    @torch.no_grad()
    def _super(self, x_u8: torch.Tensor) -> torch.Tensor:
        net: DERNet = self.model
        was = net.training
        net.eval()
        out = [net(self.ctx.adapter(self.to_unit(x_u8[s : s + 256])))[0].float()
               for s in range(0, len(x_u8), 256)]
        net.train(was)
        return torch.cat(out)

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        net: DERNet = self.model
        mem = self.ctx.memory
        assert mem is not None
        unpruned = count_parameters(net) - (count_parameters(net.aux) if net.aux is not None else 0)
        newest = net.extractors[-1]
        self._unpruned_last = copy.deepcopy(newest.encoder)
        for b in getattr(self._unpruned_last, "blocks", list)():
            b.inner_mask = None
        if self.config.masks:
            newest.set_s(self.config.s_max)
            old_dim = net.dim - newest.encoder.dim
            mask_params = sum(m.e.numel() for m in newest.masks())
            info = newest.prune()
            # the classifier loses the columns of the dropped output channels
            cols = torch.cat([torch.arange(old_dim, device=newest.keep.device), old_dim + newest.keep])
            clf = nn.Linear(len(cols), net.n_classes, bias=False).to(net.classifier.weight.device)
            with torch.no_grad():
                clf.weight.copy_(net.classifier.weight[:, cols])
            net.classifier = clf
            unpruned -= mask_params
            self.prune_log.append({"task": task.index, **info})
        net.aux = None
        pruned = count_parameters(net)
        self.params_log.append({"task": task.index, "parameters_unpruned": unpruned, "parameters": pruned,
                                "features_dim": net.dim})
        self.tasks_held.append({"task": task.index, "classes": list(task.classes), "features_dim": newest.dim})
        if self.old_classes and self.config.ft_epochs > 0:
            self._balanced_finetune(data, on_step)
        mem.select_at_task_end(data.images, data.labels, task.index, self._super)

    def _balanced_finetune(self, data: TaskData, on_step: StepCallback | None) -> None:
        net: DERNet = self.model
        mem = self.ctx.memory
        mx, my = mem.all()
        per_class = max(1, len(my) // max(1, len(set(my.tolist()))))
        gen = torch.Generator().manual_seed(int(self.ctx.generator.initial_seed()) + 7919 * (self.task.index + 1))
        xs, ys = [mx], [my]
        for c in self.new_classes:
            idx = torch.nonzero(data.labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
            xs.append(data.images[idx])
            ys.append(data.labels[idx])
        x_u8, y = torch.cat(xs), torch.cat(ys).to(self.ctx.device)
        feats = self._super(x_u8)  # frozen extractors in eval mode: computed once
        net.classifier.reset_parameters()
        opt = torch.optim.SGD(net.classifier.parameters(), lr=self.config.ft_lr, momentum=0.9, weight_decay=5e-4)
        seen = torch.tensor(self.seen_classes, device=y.device)
        pos = (y[:, None] == seen[None, :]).float().argmax(1)
        T = self.config.ft_temperature
        for epoch in range(self.config.ft_epochs):
            if epoch == self.config.ft_decay_epoch:
                for g in opt.param_groups:
                    g["lr"] *= 0.1
            order = torch.randperm(len(y), generator=gen).to(y.device)
            for s in range(0, len(y), self.config.ft_batch):
                b = order[s : s + self.config.ft_batch]
                loss = F.cross_entropy(net.classifier(feats[b])[:, seen] / T, pos[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if on_step is not None:
                    on_step(float(loss.detach()))

    def prepare_eval(self) -> None:
        self.model.eval()

    @torch.no_grad()
    def scores(self, x_u8: torch.Tensor) -> torch.Tensor:
        _, logits = self.model(self.ctx.adapter(self.to_unit(x_u8)))
        out = torch.full_like(logits, float("-inf"))
        seen = torch.tensor(self.seen_classes, device=logits.device)
        out[:, seen] = logits[:, seen]
        return out.float().cpu()

    def export_module(self) -> nn.Module:
        """The super-feature extractor + classifier; the logits are divided by the re-training temperature
        once the classifier has been re-trained (the softmax it was fitted with; the argmax is unchanged, and
        the smaller values keep onnxruntime within the exporter's 1e-4 parity over a wide super-feature)."""
        T = self.config.ft_temperature if any(p["task"] > 0 for p in self.params_log) and \
            self.config.ft_epochs > 0 else 1.0

        class Export(nn.Module):
            def __init__(self, net: DERNet) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                f, logits = self.net(x)
                return f, logits / T

        return Export(self.model)

    def model_size(self) -> dict:
        """After each task: parameters of the (pruned) model; `parameters_unpruned`, the same before this
        task's pruning (earlier extractors already pruned; without the mask logits and the auxiliary
        classifier); the super-feature width; the channels this task's pruning kept."""
        d = dict(self.params_log[-1]) if self.params_log else {"parameters": count_parameters(self.model)}
        if self.prune_log:
            d["pruning"] = self.prune_log[-1]
        return d

    def card_recipe(self) -> dict:
        return {"der_super_feature": {
            "tasks_held": self.tasks_held,
            "features_dim": self.model.dim,
            "note": "features = concatenation of one extractor per task, in task order (pruned); "
                    "the feature width grows with the tasks; logits = classifier / re-training temperature",
            "parameters": count_parameters(self.model)}}
