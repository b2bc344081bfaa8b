"""Print the protocol tables of models/README.md from the run JSONs under models/results/.

    $VENV/bin/python models/results_tables.py            # all tables, markdown, to stdout

Every figure of ours is the mean ± sample standard deviation over the seeds found for that
configuration; the seeds are listed. Published figures are the ones ../shared/METHODS.md quotes, with
their source; a dash where it quotes none.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# ../shared/METHODS.md: "re-run by OnPro, ICCV 2023, quoted in NsCE, NeurIPS 2024; Split CIFAR-10 final
# accuracy, memory 100 / 200 / 500"
P1_PUBLISHED = {
    "scr": (40.2, 48.5, 59.1), "er": (19.4, 20.9, 26.0), "agem": (17.7, 17.5, 17.5),
    "mir": (20.7, 23.5, 29.9), "gdumb": (23.3, 27.1, 34.0), "icarl": (31.0, 33.9, 42.0),
}
P1_SOURCE = "OnPro (ICCV 2023) re-run, quoted in NsCE (NeurIPS 2024), via ../shared/METHODS.md"
# ../shared/METHODS.md: class-IL Split MNIST (van de Ven et al.): EWC, online EWC and SI near 20, LwF 23.9
SPLIT_MNIST_CIL = {"ewc": "~20", "online_ewc": "~20", "lwf": "23.9"}
NAMES = {"finetune": "fine-tuning", "joint": "joint (upper bound)", "ewc": "EWC", "online_ewc": "online EWC",
         "lwf": "LwF", "lwf_mc": "LwF.MC", "er": "ER", "agem": "A-GEM", "gem": "GEM", "icarl": "iCaRL",
         "mir": "MIR", "gdumb": "GDumb", "scr": "SCR"}


def load(prefix: str) -> dict[str, list[dict]]:
    """run name without the -sN suffix -> its runs"""
    out: dict[str, list[dict]] = {}
    for f in sorted(RESULTS.glob(f"{prefix}*/metrics.json")):
        name = f.parent.name
        out.setdefault(name.rsplit("-s", 1)[0], []).append(json.loads(f.read_text()))
    return out


def ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.1f} ± {sd:.1f}"


def seeds(runs: list[dict]) -> str:
    return ",".join(str(r["extra"]["config"]["seed"]) for r in runs)


def secs(runs: list[dict]) -> str:
    return f"{statistics.mean(r['extra']['train_seconds'] for r in runs):.0f}"


def p2(prefix: str, title: str) -> None:
    groups = load(prefix + "-")
    til = load(prefix + "-til-")
    print(f"#### {title}\n")
    print("| method | memory | class-IL final avg acc (%) | forgetting (class-IL) | task-IL, same runs (%) | "
          "task-IL, multi-head training (%) | published (class-IL Split MNIST, not Fashion-MNIST) | seeds | s/run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in ("finetune", "joint", "ewc", "online_ewc", "lwf", "lwf_mc", "er", "agem", "gem", "icarl"):
        runs = groups.get(f"{prefix}-{m}", [])
        if not runs:
            continue
        t = til.get(f"{prefix}-til-{m}", [])
        mem = runs[0]["extra"]["config"]["memory"]["size"] or "-"
        fg = [r["forgetting"] for r in runs if r["forgetting"] is not None]
        print(f"| {NAMES[m]} | {mem} | {ms([r['final_average_accuracy'] for r in runs])} | {ms(fg)} | "
              f"{ms([r['task_il_final_average_accuracy'] for r in runs])} | "
              f"{ms([r['task_il_final_average_accuracy'] for r in t])}{' (' + seeds(t) + ')' if t else ''} | "
              f"{SPLIT_MNIST_CIL.get(m, '-')} | {seeds(runs)} | {secs(runs)} |")
    print()


def p1() -> None:
    print("#### P1: online Split CIFAR-10 (partial copy), final average accuracy (%)\n")
    print(f"| method | memory | ours | published ({P1_SOURCE}) | ours - published | forgetting | seeds | s/run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    methods = ("scr", "icarl", "gdumb", "mir", "er", "agem")
    for mem, col in ((100, 0), (200, 1), (500, 2)):
        found = {m: load(f"{m}-m{mem}-s").get(f"{m}-m{mem}", []) for m in methods}
        if not any(found.values()):
            continue
        for m in methods:
            runs = found[m]
            pub = P1_PUBLISHED[m][col]
            if not runs:  # a memory size that has runs: say which methods it lacks
                print(f"| {NAMES[m]} | {mem} | not run | {pub} | | | | |")
                continue
            acc = [r["final_average_accuracy"] for r in runs]
            fg = [r["forgetting"] for r in runs if r["forgetting"] is not None]
            one = (lambda xs: f"{xs[0]:.1f}") if len(runs) == 1 else ms  # no "± 0.0" for a single seed
            print(f"| {NAMES[m]} | {mem} | {one(acc)} | {pub} | {statistics.mean(acc) - pub:+.1f} | "
                  f"{one(fg) if fg else '-'} | {seeds(runs)} | {secs(runs)} |")
    print()


def gap() -> None:
    print("#### The SCR gap: bounds, data size, augmentations (memory 200, final average accuracy %)\n")
    print("| run | what | training images | ours | seeds | s/run |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [
        ("iid-online", "online iid upper bound: one pass over all 10 classes shuffled together", None),
        ("finetune", "fine-tuning lower bound: the same stream, no memory", None),
        ("er-m200-pc200", "ER, 200 images per class", 200), ("er-m200-pc400", "ER, 400 images per class", 400),
        ("er-m200", "ER, all (777-856 per class)", None),
        ("scr-m200-pc200", "SCR, 200 images per class", 200), ("scr-m200-pc400", "SCR, 400 images per class", 400),
        ("scr-m200", "SCR, all (777-856 per class), torchvision-style augmentations", None),
        ("scr-m200-pc200-kornia", "SCR, 200 images per class, kornia 0.4.1 augmentation semantics", 200),
        ("scr-m200-kornia", "SCR, all, kornia 0.4.1 augmentation semantics", None),
    ]
    for key, what, pc in rows:
        runs = load(key + "-s").get(key, [])
        if not runs:
            continue
        n = runs[0]["extra"]["n_train"]
        print(f"| `{key}` | {what} | {n} | {ms([r['final_average_accuracy'] for r in runs])} | {seeds(runs)} | "
              f"{secs(runs)} |")
    print()


# ../shared/METHODS.md, issue 19's P3. ABD (Smith et al., ICCV 2021), CIFAR-100 final accuracy at 5 tasks;
# DER (Yan et al., CVPR 2021), CIFAR-100 B0 5 steps, average / last accuracy (official results files)
P3_PUBLISHED = {"abd": "43.9", "deepinversion": "18.8", "lwf_mc": "32.5", "lwf": "17.0",
                "der-nomask": "68.7 (avg 76.8)", "der": "- (pruned, 10 steps: 64.4)",
                "abd-g60": "43.9", "deepinversion-g60": "18.8"}
P3_ROWS = [("der", "DER, masks + pruning (memory 200)"),
           ("der-sp1", "DER, masks + pruning, sparsity weight 1"),
           ("der-init05", "DER, masks initialised at 0.5 (nothing pruned; run as p3-der-s0, renamed)"), ("der-nomask", "DER without masks (the official code)"),
           ("icarl", "iCaRL (memory 200, herding)"), ("lwf", "LwF"), ("abd", "ABD (no memory)"),
           ("deepinversion", "DeepInversion (no memory)"), ("lwf_mc", "LwF.MC"), ("finetune", "fine-tuning"),
           ("abd-g60", "ABD, generator 60 iterations a task"),
           ("deepinversion-g60", "DeepInversion, generator 60 iterations a task")]


def p3() -> None:
    print("| method | final avg acc (%) | avg incremental acc (%) | published, CIFAR-100 5 tasks, final | "
          "parameters after the last task | seeds | s/run |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, what in P3_ROWS:
        runs = load(f"p3-{key}-s").get(f"p3-{key}", [])
        if not runs:
            print(f"| {what} | not run | | {P3_PUBLISHED.get(key, '-')} | | | |")
            continue
        size = runs[0]["extra"].get("model_size") or [{}]
        last = size[-1]
        params = str(last.get("parameters", "-"))
        kept = [x["pruning"]["channels_after"] for x in size if "pruning" in x]
        if kept and kept != [x["pruning"]["channels_before"] for x in size if "pruning" in x]:
            params += f" ({min(kept)}-{max(kept)} of {size[-1]['pruning']['channels_before']} channels kept)"
        one = (lambda xs: f"{xs[0]:.1f}") if len(runs) == 1 else ms  # no "± 0.0" for a single seed
        print(f"| {what} | {one([r['final_average_accuracy'] for r in runs])} | "
              f"{one([r['average_incremental_accuracy'] for r in runs])} | {P3_PUBLISHED.get(key, '-')} | "
              f"{params} | {seeds(runs)} | {secs(runs)} |")
    print()


# ../shared/METHODS.md quotes no LVT figure (its setting: CIFAR-100, 5-20 splits, memory 200 / 500, ~8.9 M
# parameters, 50 epochs); the issue-20 table has ours only.
P4_ROWS = [("lvt", "LVT (inter-task attention, dual classifier, confidence memory)", "ViT"),
           ("vit-er", "plain ViT + ER", "ViT"), ("er", "ER", "reduced ResNet-18"),
           ("icarl", "iCaRL (herding, NCM)", "reduced ResNet-18"), ("der", "DER (masks + pruning)", "reduced ResNet-18")]
P4_ABLATIONS = [("lvt", "LVT (both parts)"), ("lvt-noita", "without inter-task attention (self-attention)"),
                ("lvt-1clf", "one classifier (no injection / accumulation split)"), ("vit-er", "neither (plain ViT + ER)")]


def _params(runs: list[dict]) -> str:
    size = runs[0]["extra"].get("model_size") or [{}]
    return f"{size[-1].get('parameters', '-'):,}".replace(",", " ") if size[-1].get("parameters") else "-"


def p4() -> None:
    print("#### P4: class-IL partial Split CIFAR-10, 5 tasks, 3 epochs, Adam 1e-3, batch 32 + memory batch 32\n")
    print("| method | backbone | parameters | memory | final avg acc (%) | avg incremental acc (%) | forgetting | "
          "seeds | s/run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mem in (200, 500):
        for key, what, bb in P4_ROWS:
            runs = load(f"p4-{key}-m{mem}-s").get(f"p4-{key}-m{mem}", [])
            if not runs:
                print(f"| {what} | {bb} | | {mem} | not run | | | | |")
                continue
            fg = [r["forgetting"] for r in runs if r["forgetting"] is not None]
            print(f"| {what} | {bb} | {_params(runs)} | {mem} | {ms([r['final_average_accuracy'] for r in runs])} | "
                  f"{ms([r['average_incremental_accuracy'] for r in runs])} | {ms(fg)} | {seeds(runs)} | {secs(runs)} |")
    print()
    print("#### P4 ablations (memory 200)\n")
    print("| LVT variant | final avg acc (%) | avg incremental acc (%) | forgetting | seeds |")
    print("| --- | --- | --- | --- | --- |")
    for key, what in P4_ABLATIONS:
        runs = load(f"p4-{key}-m200-s").get(f"p4-{key}-m200", [])
        if runs:
            fg = [r["forgetting"] for r in runs if r["forgetting"] is not None]
            print(f"| {what} | {ms([r['final_average_accuracy'] for r in runs])} | "
                  f"{ms([r['average_incremental_accuracy'] for r in runs])} | {ms(fg)} | {seeds(runs)} |")
    print()


# ../shared/METHODS.md, task-IL (CPG README): fine-grained suite CUBS / Cars / Flowers / WikiArt / Sketch, and
# CIFAR-100 20 tasks on VGG-16 -- other benchmarks than ours, quoted for scale
P5_PUBLISHED = {"pnn": "fine-grained 78.9 / 89.2 / 93.4 / 74.9 / 76.4",
                "piggyback": "fine-grained 84.6 / 89.6 / 94.8 / 71.3 / 79.9",
                "cpg": "fine-grained 83.6 / 92.8 / 96.6 / 77.2 / 80.3; CIFAR-100 20 tasks 80.9 (PackNet 67.5)"}
P5_ROWS = [("finetune", "fine-tuning (one head per task)"), ("ewc", "EWC (one head per task)"), ("pnn", "PNN"),
           ("den", "DEN"), ("piggyback", "Piggyback (EfficientNet-Lite0, ImageNet)"), ("cpg", "CPG"),
           ("vcl", "VCL"), ("vcl_coreset", "VCL + coreset (200 per task)"), ("agscl", "AGS-CL (mu 10, the default)"),
           ("agscl_mu2", "AGS-CL, mu 2")]


def til_forgetting(r: dict) -> float | None:
    a = r.get("task_il_accuracy_matrix") or []
    t = len(a) - 1
    if t < 1:
        return None
    return statistics.mean(max(a[k][j] for k in range(j, t)) - a[t][j] for j in range(t))


def _size_row(r: dict) -> str:
    sizes = r["extra"].get("model_size") or []
    return " → ".join(f"{s['parameters'] / 1e6:.2f}" for s in sizes if "parameters" in s)


def p5() -> None:
    for d, title in (("fmnist", "Split Fashion-MNIST (first 1000 training images per class), MLP-sized networks"),
                     ("cifar", "partial Split CIFAR-10 (all 8068 training images), MLP-sized networks on the flattened image")):
        print(f"#### P5: task-IL {title}, 5 tasks, 5 epochs, Adam 1e-3\n")
        print("| method | task-IL final avg acc (%) | task-IL forgetting | parameters after each task (M) | "
              "published (task-IL, other benchmarks) | seeds | s/run |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for key, what in P5_ROWS:
            runs = load(f"p5-{d}-{key}-s").get(f"p5-{d}-{key}", [])
            if not runs:
                continue
            fg = [f for f in (til_forgetting(r) for r in runs) if f is not None]
            print(f"| {what} | {ms([r['task_il_final_average_accuracy'] for r in runs])} | {ms(fg)} | "
                  f"{_size_row(runs[0])} | {P5_PUBLISHED.get(key, '-')} | {seeds(runs)} | {secs(runs)} |")
        print()


if __name__ == "__main__":
    p2("p2-mlp", "P2: Split Fashion-MNIST, MLP 784-400-400")
    p2("p2-rn18", "P2: Split Fashion-MNIST, reduced ResNet-18")
    p1()
    gap()
    p3()
    p4()
    p5()
