"""Piggyback (Mallya et al., ECCV 2018): binary masks over a frozen pretrained network, one mask per task.

The network is the shipped ImageNet EfficientNet-Lite0 (`--backbone efficientnet_lite0`; the same
weights as models/efficientnet-lite0.onnx), frozen: weights and BatchNorm statistics never change.
For task t every convolution weight W gets real-valued scores s_t (initialised at `init_score` 1e-2,
above the threshold 5e-3: the first forward is the pretrained network) and the task uses
    W * m_t,   m_t = 1[s_t > threshold]
with the straight-through estimator (dL/ds = dL/dm; `taskil.binary_mask`). The scores (Adam,
`mask_lr`, the paper's 1e-4) and a linear head per task (lr `lr`) are all that is trained. One bit per
masked weight per task is what a task costs (`model_size`). A real transfer setting: the first task
already starts from ImageNet features.

`resolution` < 224 runs the network on smaller images (the input is resized inside the module): the
CPU runs use it to fit the budget; the default is the backbone's 224.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..scenario import Task
from .base import Options
from .taskil import TaskILStrategy, binary_mask, count


@dataclass(frozen=True)
class PiggybackOptions(Options):
    optimizer: str = "adam"
    lr: float = 1e-3  # the heads
    mask_lr: float = 1e-4  # the mask scores
    init_score: float = 1e-2
    threshold: float = 5e-3
    resolution: int = 224


class PiggybackModel(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.masked = [n for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d)]
        self.scores = nn.ModuleList()  # per task: ParameterDict, conv name ('.' -> '/') -> scores
        self.heads = nn.ModuleList()

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm statistics
        return self


class Piggyback(TaskILStrategy):
    name = "piggyback"
    Options = PiggybackOptions

    def build_model(self) -> nn.Module:
        enc = self.ctx.encoder
        if not hasattr(enc, "net") or getattr(enc, "dim", None) != 1280:
            raise ValueError("piggyback masks a pretrained network: use --backbone efficientnet_lite0")
        return PiggybackModel(enc)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if not params or self.task is None:
            return super().make_optimizer(params)
        t = self.task.index
        scores = list(self.model.scores[t].parameters())
        ids = {id(p) for p in scores}
        rest = [p for p in params if id(p) not in ids]
        return torch.optim.Adam([{"params": scores, "lr": self.config.mask_lr}, {"params": rest, "lr": self.config.lr}],
                                weight_decay=self.config.weight_decay)

    def begin_task_schedule(self, n_steps: int) -> None:
        self.task_steps, self.task_step = n_steps, 0  # keep the two learning rates

    def setup_task(self, task: Task) -> None:
        for p in [*self.model.scores.parameters(), *self.model.heads.parameters()]:
            p.requires_grad_(False)
        mods = dict(self.model.backbone.named_modules())
        self.model.scores.append(nn.ParameterDict({
            n.replace(".", "/"): nn.Parameter(torch.full_like(mods[n].weight, self.config.init_score))
            for n in self.model.masked
        }))
        self.model.heads.append(nn.Linear(1280, len(task.classes)))

    def trainable(self) -> list[nn.Parameter]:
        return [*self.model.scores[-1].parameters(), *self.model.heads[-1].parameters()]

    def masked_weights(self, t: int) -> dict[str, torch.Tensor]:
        mods = dict(self.model.backbone.named_modules())
        return {f"{n}.weight": mods[n].weight * binary_mask(self.model.scores[t][n.replace('.', '/')],
                                                            self.config.threshold)
                for n in self.model.masked}

    def task_features(self, x, t, deterministic=False):
        r = self.config.resolution
        if x.shape[-1] != r:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        self.model.backbone.eval()
        return functional_call(self.model.backbone, self.masked_weights(t), (x,))

    def task_head(self, f, t, deterministic=False):
        return self.model.heads[t](f)

    @torch.no_grad()
    def masked_off(self, t: int) -> int:
        """How many pretrained weights task t's mask switches off."""
        return sum(int((s <= self.config.threshold).sum()) for s in self.model.scores[t].values())

    def mask_density(self, t: int) -> float:
        return 1.0 - self.masked_off(t) / max(1, sum(s.numel() for s in self.model.scores[t].values()))

    def model_size(self) -> dict:
        backbone = count(self.model.backbone.parameters())
        bits = count(self.model.scores.parameters())  # one bit per masked weight per task
        heads = count(self.model.heads.parameters())
        return {"parameters": backbone + heads, "mask_bits": bits,
                "bytes": 4 * (backbone + heads) + bits // 8,
                "mask_density": [self.mask_density(t) for t in range(len(self.model.scores))],
                "masked_off": [self.masked_off(t) for t in range(len(self.model.scores))]}
