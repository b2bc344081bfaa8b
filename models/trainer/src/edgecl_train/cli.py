"""Command line: `python -m edgecl_train run ...` (train, report, export) and `summarize` (mean +- std).

Progress (a bar with the running loss) goes to stderr and is drawn here, never inside the algorithms;
when stderr is not a terminal, one line per task is printed instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from .data import DATASETS
from .memory import Selector

DEFAULT_COMMAND_PREFIX = "python -m edgecl_train"


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from .backbones import BACKBONES
    from .strategies import STRATEGIES

    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="scr")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10")
    p.add_argument("--data-dir", help="dataset root (default: $EDGECL_DATA, else ../shared/data from the repo root)")
    p.add_argument("--backbone", choices=BACKBONES, default="reduced_resnet18")
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--initial-classes", type=int, default=None,
                   help="classes of the first task (B50: --initial-classes 50 --tasks 11); default: equal shares")
    p.add_argument("--class-order-seed", type=int, default=None,
                   help="permute the class order with this seed (default: label order 0..K-1)")
    p.add_argument("--epochs", type=int, default=None, help="offline: passes per task (default: online, one pass)")
    p.add_argument("--batch-size", type=int, default=10, help="stream batch")
    p.add_argument("--memory", type=int, default=None,
                   help="memory size in samples (default 200 for strategies that need one, else 0)")
    p.add_argument("--selector", choices=[s.value for s in Selector], default=None,
                   help="which samples the memory keeps (default: the strategy's; reservoir for most, "
                        "class_balanced for gdumb, herding for icarl)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=None, help="(default: the strategy's, sgd)")
    p.add_argument("--lr", type=float, default=None, help="(default: the strategy's, 0.1)")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--mem-batch", type=int, default=None, help="memory batch (replay strategies; er 10, scr 100)")
    p.add_argument("--temperature", type=float, default=None, help="SupCon temperature (scr; default 0.1)")
    p.add_argument("--review", action=argparse.BooleanOptionalAction, default=None,
                   help="SCR's review trick (scr; default on)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                   help="set one of the strategy's own options (repeatable), e.g. -o lam=100 for ewc; "
                        "`python -m edgecl_train options STRATEGY` lists them")
    p.add_argument("--multihead", action="store_true",
                   help="task-IL training: each sample's cross-entropy runs over its own task's classes only")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="use only the first N training images of each class (quick smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--report-dir", type=Path, default=None, help="write metrics.json and accuracy.png here")
    p.add_argument("--out", type=Path, default=None, help="export the trained backbone to this .onnx (+ .json card)")
    p.add_argument("--name", default=None, help="model name in the card")
    p.add_argument("--quiet", action="store_true")


def _parse_value(text: str, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text


def strategy_options(strategy: str, flags: dict, pairs: list[str]):
    """The strategy's Options: its defaults, then the generic flags it has, then NAME=VALUE pairs.
    A flag or name the strategy does not declare is an error (not silently ignored)."""
    from dataclasses import fields

    from .strategies import STRATEGIES

    cls = STRATEGIES[strategy]
    opts = cls.Options()
    known = {f.name for f in fields(opts)}
    changes = {}
    for name, value in flags.items():
        if value is None:
            continue
        if name not in known:
            raise SystemExit(f"error: --{name.replace('_', '-')} is not an option of strategy {strategy} "
                             f"(its options: {', '.join(sorted(known))})")
        changes[name] = value
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"error: -o {pair!r}: strategy {strategy} has options {', '.join(sorted(known))}")
        changes[name] = _parse_value(text, getattr(opts, name))
    return replace(opts, **changes)


def config_from_args(a: argparse.Namespace):
    from .memory import MemoryConfig
    from .scenario import ScenarioConfig
    from .strategies import STRATEGIES
    from .train import RunConfig

    cls = STRATEGIES[a.strategy]
    sc = strategy_options(a.strategy, {"optimizer": a.optimizer, "lr": a.lr, "momentum": a.momentum,
                                       "weight_decay": a.weight_decay, "mem_batch": a.mem_batch,
                                       "temperature": a.temperature, "review": a.review}, a.option)
    memory = a.memory if a.memory is not None else (200 if cls.needs_memory else 0)
    selector = Selector(a.selector) if a.selector is not None else cls.default_selector
    online = a.epochs is None
    return RunConfig(
        strategy=a.strategy,
        dataset=a.dataset,
        data_root=a.data_dir,
        backbone=a.backbone,
        scenario=ScenarioConfig(n_tasks=a.tasks, class_order_seed=a.class_order_seed, online=online,
                                epochs=1 if online else a.epochs, batch_size=a.batch_size,
                                initial_classes=a.initial_classes),
        memory=MemoryConfig(size=memory, selector=selector),
        strategy_config=sc,
        seed=a.seed,
        device=a.device,
        amp=a.amp,
        train_per_class=a.train_per_class,
        multihead=a.multihead,
    )


class Progress:
    """tqdm bar per phase with the running (exponential) loss; plain lines when not a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.running: float | None = None
        self.n_steps = 0

    def __call__(self, e) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if e.kind in ("task_start", "review_start"):
            self._close()
            label = f"task {e.task}" if e.kind == "task_start" else f"review {e.task}"
            if self.tty:
                self.bar = tqdm(total=e.total, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)
        elif e.kind == "step":
            if e.loss is not None:
                self.running = e.loss if self.running is None else 0.98 * self.running + 0.02 * e.loss
            self.n_steps += 1
            if self.bar is not None:
                self.bar.update(1)
                if self.running is not None:
                    self.bar.set_postfix(loss=f"{self.running:.3f}", refresh=False)
        elif e.kind == "task_end":
            self._close()
            loss = "n/a" if self.running is None else f"{self.running:.3f}"
            row = " ".join(f"{v:5.1f}" for v in (e.row or []))
            print(f"task {e.task} done in {e.seconds:.0f}s, running loss {loss}, accuracy per task: {row}",
                  file=sys.stderr, flush=True)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from .distributed import init_from_env, shutdown
    from .train import export_result, run

    torch.set_num_threads(a.threads)
    cfg = config_from_args(a)
    dist = init_from_env()
    result = run(cfg, Progress(a.quiet or not dist.is_main), dist=dist)
    if dist.is_main:
        m = result.metrics
        command = f"{DEFAULT_COMMAND_PREFIX} " + shlex.join(argv)
        m.extra["command"] = command
        m.extra["config"] = cfg.to_json()
        summary = (f"{cfg.strategy} {cfg.backbone} {cfg.dataset} memory {cfg.memory.size} seed {cfg.seed}: "
                   f"final average accuracy {m.final_average_accuracy:.2f}, forgetting "
                   f"{m.forgetting if m.forgetting is None else round(m.forgetting, 2)}, "
                   f"train time {result.train_seconds:.0f}s")
        if a.report_dir is not None:
            a.report_dir.mkdir(parents=True, exist_ok=True)
            m.write(a.report_dir / "metrics.json")
            m.plot(a.report_dir / "accuracy.png", title=summary)
        if a.out is not None:
            name = a.name or a.out.stem
            report = export_result(result, a.out, name=name, command=command)
            print(report.summary(), file=sys.stderr)
            if a.report_dir is not None:
                m.extra["export"] = {"onnx": str(a.out), "sha256": report.sha256,
                                     "parity_features": report.max_abs_diff_features,
                                     "parity_logits": report.max_abs_diff_logits}
                m.write(a.report_dir / "metrics.json")
        print(summary)
    shutdown(dist)
    return 0


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.1f} ± {sd:.1f}"


def cmd_summarize(a: argparse.Namespace) -> int:
    """Group metrics.json files by configuration; print mean +- std (sample standard deviation) over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for f in a.metrics:
        d = json.loads(Path(f).read_text())
        c = d["extra"]["config"]
        sc = c["strategy_config"]
        sce = c["scenario"]
        key = (c["dataset"], c["backbone"], c["strategy"], c["memory"]["size"],
               c["memory"].get("selector", "reservoir") if c["memory"]["size"] else "-",
               "online" if sce["online"] else f"{sce['epochs']} ep", str(sc.get("mem_batch", "-")),
               str(sc.get("review", "-")) + (f", {sc['augment']}" if "augment" in sc else ""),
               str(c.get("train_per_class") or "all"), "multi-head" if c.get("multihead") else "single")
        groups.setdefault(key, []).append(d)
    print("| dataset | backbone | strategy | memory | selector | stream | mem batch | review | per class | head | seeds | "
          "class-IL final avg acc (%) | task-IL final avg acc (%) | forgetting (class-IL) | train s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        runs = groups[key]
        accs = [r["final_average_accuracy"] for r in runs]
        til = [r["task_il_final_average_accuracy"] for r in runs if r.get("task_il_final_average_accuracy") is not None]
        fg = [r["forgetting"] for r in runs if r["forgetting"] is not None]
        secs = [r["extra"]["train_seconds"] for r in runs]
        seeds = ",".join(str(r["extra"]["config"]["seed"]) for r in runs)
        print(f"| {' | '.join(str(k) for k in key)} | {seeds} | {_mean_sd(accs)} | {_mean_sd(til)} | "
              f"{_mean_sd(fg)} | {statistics.mean(secs):.0f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m edgecl_train", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="train a backbone class-incrementally; report; optionally export ONNX")
    _add_run_args(p_run)
    p_sum = sub.add_parser("summarize", help="mean +- std over metrics.json files")
    p_sum.add_argument("metrics", nargs="+")
    p_opt = sub.add_parser("options", help="list a strategy's options and their defaults")
    p_opt.add_argument("strategy")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if a.cmd == "run":
        return cmd_run(a, argv)
    if a.cmd == "options":
        from dataclasses import asdict

        from .strategies import STRATEGIES

        for k, v in asdict(STRATEGIES[a.strategy].Options()).items():
            print(f"{k} = {v!r}")
        return 0
    return cmd_summarize(a)
