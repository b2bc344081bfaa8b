"""Task-conditioned export: a model that needs the task id at test time (the task-IL methods: PNN, DEN,
Piggyback, CPG, VCL, AGS-CL) becomes ONE ONNX FILE PER TASK, each with its own card.

`STEM.onnx` requested -> `STEM.task0.onnx` ... `STEM.task{T-1}.onnx` and their cards
`STEM.task{t}.json`. File t is the network task t runs (PNN: columns 0..t and their laterals; CPG: the
weights task t owns and picks, the picks applied; DEN: the units with timestamp <= t; VCL: the posterior
means), normalised input -> `features` (what task t's head reads) and `logits` over task t's classes
only. Each card is an ordinary card (format edgecl-model-card/1: input, features, logits, sha256,
reference pairs of its own file) plus the optional key `task_conditioned` (models/CARD.md):

    "task_conditioned": {
      "scheme": "file_per_task",
      "task": 2,                      # this file's task, 0-based
      "n_tasks": 5,
      "task_classes": ["Coat", "Sandal"],   # this task's classes, in the order of `logits`
      "files": [{"task": 0, "onnx": "STEM.task0.onnx", "sha256": "..."}, ...]   # the whole set
    }

and `classes` = this task's classes. Why one file per task rather than one graph with a task input:
the device runs graphs with exactly one input (the image) and its `verify-model` replays one
reference input per seed, so every file of a set is a model the device already loads and verifies;
what is new is only the set (which file serves which task, the hashes of its siblings). A device
that serves one task loads one graph. The price: weights shared by several tasks are stored once per
file (PNN's file t holds columns 0..t; Piggyback's would hold the backbone with task t's mask applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .export import ExportReport, card_for, export_onnx

SCHEME = "file_per_task"


def task_file(stem_path: Path, t: int) -> Path:
    return stem_path.with_name(f"{stem_path.stem}.task{t}.onnx")


@dataclass
class TaskSetReport:
    reports: list[ExportReport]

    @property
    def sha256(self) -> list[str]:
        return [r.sha256 for r in self.reports]

    @property
    def max_abs_diff_features(self) -> float:
        return max(r.max_abs_diff_features for r in self.reports)

    @property
    def max_abs_diff_logits(self) -> float | None:
        return max(r.max_abs_diff_logits or 0.0 for r in self.reports)

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.reports)


def export_task_set(strategy, onnx_path: str | Path, *, name: str, class_names: list[str], provenance: str,
                    recipe: dict, accuracy: dict, opset: int = 17) -> TaskSetReport:
    """One ONNX + card per task seen; every card lists the whole set."""
    onnx_path = Path(onnx_path)
    spec = strategy.ctx.encoder.spec
    n = len(strategy.task_classes)
    reports = []
    for t in range(n):
        module = strategy.task_module(t).cpu().eval()
        reports.append(export_onnx(module, spec, task_file(onnx_path, t), with_logits=True, opset=opset))
    files = [{"task": t, "onnx": r.path.name, "sha256": r.sha256} for t, r in enumerate(reports)]
    til = accuracy.get("task_il_accuracy_matrix")
    for t, r in enumerate(reports):
        names = [class_names[c] for c in strategy.task_classes[t]]
        acc = dict(accuracy)
        if til:
            acc["task_il_final_accuracy_this_task"] = til[-1][t]
        card = card_for(r, name=f"{name}.task{t}", spec=spec, provenance=provenance, recipe=recipe,
                        classes=names, accuracy=acc)
        card.extra["task_conditioned"] = {"scheme": SCHEME, "task": t, "n_tasks": n, "task_classes": names,
                                          "files": files}
        card.write(r.path.with_suffix(".json"))
    return TaskSetReport(reports)


def export_run(result, onnx_path: str | Path, *, name: str, command: str, opset: int = 17) -> TaskSetReport:
    """`train.export_result` for a task-conditioned strategy: the run's provenance, recipe and accuracy."""
    from .train import _init_words

    cfg, m, strategy = result.config, result.metrics, result.strategy
    names_by_label = {c: n for c, n in zip(sorted({c for cl in strategy.task_classes for c in cl}), result.classes)}
    class_names = [names_by_label.get(i, str(i)) for i in range(strategy.ctx.n_classes)]
    return export_task_set(
        strategy, onnx_path, name=name, class_names=class_names, opset=opset,
        provenance=(f"Trained by edgecl's models/trainer (edgecl_train): {cfg.backbone} {_init_words(cfg.backbone)}, "
                    f"strategy {cfg.strategy} (task-incremental: one file per task), on {cfg.dataset} "
                    f"({m.extra['n_train']} training images). Apache-2.0."),
        recipe={"command": command, "seed": cfg.seed, "strategy": cfg.strategy, "config": cfg.to_json(),
                "train_seconds": result.train_seconds, "model_size_after_each_task": m.extra.get("model_size")},
        accuracy={
            "protocol": (f"task-incremental {cfg.dataset}, {cfg.scenario.n_tasks} tasks (the task id given at test "
                         f"time), offline {cfg.scenario.epochs} epochs, batch {cfg.scenario.batch_size}"),
            "task_il_final_average_accuracy": m.task_il_final_average_accuracy,
            "task_il_accuracy_matrix": m.task_il_accuracy_matrix,
            "n_test": m.extra["n_test"],
        },
    )


def verify_task_set(card_path: str | Path) -> list[str]:
    """The set-level checks `edgecl verify-model` should add for a card with `task_conditioned` (the
    per-file checks, sha256 and reference pairs, are the existing ones). Returns the problems found
    (empty: the set is consistent). models/CARD.md lists the same rules."""
    import json

    from .card import sha256_file

    card_path = Path(card_path)
    card = json.loads(card_path.read_text())
    tc = card.get("task_conditioned")
    if tc is None:
        return []
    problems: list[str] = []
    if tc.get("scheme") != SCHEME:
        return [f"task_conditioned.scheme {tc.get('scheme')!r} is not {SCHEME!r}"]
    n, t, files = tc.get("n_tasks"), tc.get("task"), tc.get("files") or []
    if not isinstance(n, int) or n < 1 or not isinstance(t, int) or not 0 <= t < n:
        return [f"task_conditioned.task {t!r} is not in 0..n_tasks-1 (n_tasks {n!r})"]
    if sorted(f.get("task") for f in files) != list(range(n)):
        problems.append(f"task_conditioned.files must list tasks 0..{n - 1} once each")
    mine = [f for f in files if f.get("task") == t]
    if not mine or mine[0].get("onnx") != card["onnx"] or mine[0].get("sha256") != card["sha256"]:
        problems.append("task_conditioned.files does not list this file (onnx and sha256) under its own task")
    logits = card.get("logits")
    if not logits or logits.get("classes") != len(tc.get("task_classes") or []):
        problems.append("logits.classes must equal the number of task_conditioned.task_classes")
    if card.get("classes") and card["classes"] != tc.get("task_classes"):
        problems.append("classes must equal task_conditioned.task_classes")
    seen_classes: set[str] = set()
    for f in files:
        name = f.get("onnx", "")
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            problems.append(f"task {f.get('task')}: onnx {name!r} must be a file name beside this card")
            continue
        path = card_path.with_name(name)
        if not path.is_file():
            problems.append(f"task {f.get('task')}: {name} is missing")
            continue
        if sha256_file(path) != f.get("sha256"):
            problems.append(f"task {f.get('task')}: {name} has sha256 {sha256_file(path)}, the set says {f.get('sha256')}")
        sib = path.with_suffix(".json")
        if not sib.is_file():
            problems.append(f"task {f.get('task')}: card {sib.name} is missing")
            continue
        stc = json.loads(sib.read_text()).get("task_conditioned") or {}
        if stc.get("scheme") != SCHEME or stc.get("n_tasks") != n or stc.get("files") != files or stc.get("task") != f.get("task"):
            problems.append(f"task {f.get('task')}: card {sib.name} describes a different set")
        overlap = seen_classes & set(stc.get("task_classes") or [])
        if overlap:
            problems.append(f"task {f.get('task')}: classes {sorted(overlap)} also belong to another task")
        seen_classes |= set(stc.get("task_classes") or [])
    return problems
