"""The interface every continual-learning strategy implements, and what they share.

A strategy owns its trainable model (encoder + whatever heads it needs) and optimiser. The run loop
(`edgecl_train.train`) calls, per task: `before_task`, `observe` for each stream batch, `after_task`
(which is handed the task's training data, for methods that need it: Fisher information, herding,
GDumb's retraining); then `prepare_eval` and `scores` to fill the class-IL and task-IL accuracy
matrices; finally `export_module` for ONNX. Strategies never print or draw progress: they report
through the `on_step` callback they are given.

Options: every strategy declares its own frozen dataclass `Options` (a subclass of `Options` here, which
holds only the optimiser's settings), so a method's knobs live next to the method. `step` runs
backward, then `after_backward` (the hook where A-GEM and GEM project the gradient), then the optional
gradient-norm clip, then the optimiser. `make_optimizer` picks SGD or Adam from the options.

Adding a method = one new file with one `Strategy` subclass (and its `Options`), registered in
`strategies/__init__.py`.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import InputAdapter
from ..memory import ReplayMemory, Selector
from ..scenario import Task

StepCallback = Callable[[float], None]


@dataclass(frozen=True)
class Options:
    """The optimiser, common to all strategies; a strategy's own knobs go in its subclass."""

    optimizer: str = "sgd"  # "sgd" | "adam"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip: float = 0.0  # max gradient norm; 0 = no clipping
    schedule: str = "constant"  # "constant" | "cosine": lr * (1 + cos(pi * step / steps)) / 2 within each task

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be constant or cosine, got {self.schedule!r}")


@dataclass(frozen=True)
class ReplayOptions(Options):
    mem_batch: int = 10  # memory samples replayed with every stream batch


@dataclass
class TaskData:
    """A task's training images (uint8, CPU) and labels, handed to `after_task`."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass
class Context:
    """What the run loop hands a strategy."""

    encoder: nn.Module  # has .dim and .spec
    adapter: InputAdapter
    n_classes: int
    image_size: tuple[int, int]  # dataset resolution (augmentations work there)
    memory: ReplayMemory | None
    device: torch.device
    generator: torch.Generator  # the strategy's own randomness (augmentations)
    amp: bool = False  # CUDA mixed precision
    ddp: bool = False  # wrap the model in DistributedDataParallel
    make_encoder: Callable[[], nn.Module] | None = None  # a freshly initialised encoder (GDumb)
    # task-IL training ("multi-head"): class -> its task; each sample's cross-entropy then runs over its
    # own task's classes only. None: class-IL training (one head over all classes).
    class_task: torch.Tensor | None = None


class ClassifierModel(nn.Module):
    """encoder + linear classifier over all classes: forward -> (features, logits)."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        return f, self.head(f)


class Strategy(abc.ABC):
    name: ClassVar[str]
    Options: ClassVar[type] = Options
    needs_memory: ClassVar[bool] = False
    default_selector: ClassVar[Selector] = Selector.RESERVOIR
    joint: ClassVar[bool] = False  # trains once on all tasks together
    has_logits: ClassVar[bool] = True  # exports a `logits` output
    # False: extra forward/backward passes per step (gradient projection, virtual steps) or a model rebuilt
    # mid-run, which DistributedDataParallel's one-forward-per-backward contract does not allow
    supports_ddp: ClassVar[bool] = True

    def __init__(self, ctx: Context, config: Options) -> None:
        if not isinstance(config, self.Options):
            raise TypeError(f"strategy {self.name} takes {self.Options.__name__}, got {type(config).__name__}")
        if ctx.ddp and not self.supports_ddp:
            raise ValueError(f"strategy {self.name} runs in a single process only (no torchrun/DDP)")
        if self.needs_memory and (ctx.memory is None or ctx.memory.config.size == 0):
            raise ValueError(f"strategy {self.name} needs a memory (--memory N, N > 0)")
        self.ctx = ctx
        self.config = config
        self.task: Task | None = None
        self.seen_classes: list[int] = []
        self.model = self.build_model().to(ctx.device)
        self.train_model: nn.Module = self.model
        if ctx.ddp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        self.opt = self.make_optimizer(self.model.parameters())
        self.scaler = torch.amp.GradScaler("cuda", enabled=ctx.amp)
        self.task_steps = 0  # stream steps in the current task (set by the run loop; the schedule's length)
        self.task_step = 0

    # ---- building blocks
    def build_model(self) -> nn.Module:
        return ClassifierModel(self.ctx.encoder, self.ctx.n_classes)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def to_unit(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float [0, 1] on the device."""
        return x_u8.to(self.ctx.device, non_blocking=True).float().div_(255.0)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.ctx.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def forward_train(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            return self.train_model(self.ctx.adapter(x01))

    def forward_views(self, xs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Forward several batches that share one backward pass.

        Single process: one forward per batch, so BatchNorm normalises each batch on its own (as SCR's
        code does). Under DDP: one forward over the concatenation, because DDP expects one forward per
        backward; BatchNorm then sees the batches together.
        """
        if not self.ctx.ddp:
            return [self.forward_train(x) for x in xs]
        sizes = [len(x) for x in xs]
        feats, outs = self.forward_train(torch.cat(xs))
        return list(zip(feats.split(sizes), outs.split(sizes)))

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def flat_grad(self) -> torch.Tensor:
        """The current gradients of all trainable parameters as one vector (zeros where there is none)."""
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in self.parameters()])

    def set_flat_grad(self, g: torch.Tensor) -> None:
        o = 0
        for p in self.parameters():
            n = p.numel()
            p.grad = g[o : o + n].view_as(p).to(p.dtype).clone()
            o += n

    def after_backward(self) -> None:
        """Hook between backward and the optimiser step (gradient projection); gradients are unscaled."""

    def step(self, loss: torch.Tensor, grad_scale: float = 1.0) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        if grad_scale != 1.0:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(grad_scale)
        self.after_backward()
        if self.config.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.task_step += 1
        if self.config.schedule == "cosine" and self.task_steps > 0:
            frac = min(1.0, self.task_step / self.task_steps)
            for g in self.opt.param_groups:
                g["lr"] = self.config.lr * 0.5 * (1.0 + math.cos(math.pi * frac))

    def remember(self, x_u8: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        if self.ctx.memory is not None and self.ctx.memory.config.size > 0:
            self.ctx.memory.add(x_u8, y, task=self.task.index if self.task else 0, logits=logits)

    @torch.no_grad()
    def features(self, x_u8: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """Encoder features of uint8 images, in batches of 256, in eval mode (the mode is restored)."""
        enc = encoder or self.model.encoder
        was = enc.training
        enc.eval()
        out = [enc(self.ctx.adapter(self.to_unit(x_u8[s : s + 256]))).float() for s in range(0, len(x_u8), 256)]
        enc.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.ctx.encoder.dim, device=self.ctx.device)

    # ---- the interface
    def begin_task_schedule(self, n_steps: int) -> None:
        """The run loop's call before a task's first step: the learning rate restarts at `lr`."""
        self.task_steps, self.task_step = n_steps, 0
        for g in self.opt.param_groups:
            g["lr"] = self.config.lr

    def before_task(self, task: Task) -> None:
        self.task = task
        self.seen_classes = sorted(set(self.seen_classes) | set(task.classes))
        self.model.train()

    @abc.abstractmethod
    def observe(self, x_u8: torch.Tensor, y: torch.Tensor) -> float | None:
        """Learn from one stream batch (uint8 images on the CPU); returns the loss, if one was computed."""

    def after_task(self, task: Task, data: TaskData, on_step: StepCallback | None = None) -> None:
        pass

    def prepare_eval(self) -> None:
        self.model.eval()

    @torch.no_grad()
    def scores(self, x_u8: torch.Tensor) -> torch.Tensor:
        """[N, n_classes] class scores (higher = more likely), on the CPU. Class-IL predicts the argmax
        over all classes; task-IL the argmax over the task's classes."""
        _, logits = self.model(self.ctx.adapter(self.to_unit(x_u8)))
        return logits.float().cpu()

    def predict(self, x_u8: torch.Tensor) -> torch.Tensor:
        return self.scores(x_u8).argmax(1)

    def export_module(self) -> nn.Module:
        """Takes the normalised input (the card's), returns features or (features, logits)."""
        return self.model

    def model_size(self) -> dict:
        """What the model stores after the current task (the run loop records it after every task);
        growing and masking methods report more than the parameter count."""
        return {"parameters": int(sum(p.numel() for p in self.model.parameters()))}

    def mask_to_task(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Multi-head training: logits of classes outside each sample's task set to -inf (no-op in class-IL)."""
        ct = self.ctx.class_task
        if ct is None:
            return logits
        ct = ct.to(logits.device)
        return logits.masked_fill(ct[None, :] != ct[y][:, None], float("-inf"))

    def ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.mask_to_task(logits.float(), y), y)


class NCMScores:
    """Nearest class mean over L2-normalised encoder features (SCR, iCaRL): scores = -distance to each
    class mean; classes without a mean score -inf."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.means: torch.Tensor | None = None
        self.classes: torch.Tensor | None = None

    def fit(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        feats = F.normalize(feats.float(), dim=1)
        labels = labels.to(feats.device)
        self.classes = torch.unique(labels).cpu()
        self.means = torch.stack([F.normalize(feats[labels == c].mean(0), dim=0) for c in self.classes.tolist()])

    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        assert self.means is not None and self.classes is not None, "fit first"
        d = torch.cdist(F.normalize(feats.float(), dim=1), self.means).cpu()
        out = torch.full((len(feats), self.n_classes), float("-inf"))
        out[:, self.classes] = -d
        return out
