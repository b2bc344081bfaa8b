"""A diagnostic, not a protocol run: `python -m edgecl_train run ...` with two extra readings after every
task, printed as lines starting with DIAG (and all of them in one DIAG-ALL line at the end):

- `bn_from_memory`: class-IL accuracy per task of a copy of the model whose BatchNorm running statistics
  are re-estimated (reset, then a cumulative average over the replay memory's content in shuffled batches
  of 50); tells whether the evaluation's running statistics are what costs accuracy;
- `pred_task_share`: the share (%) of the usual evaluation's predictions on the seen tasks' test images
  that fall in each task's classes; tells how far the classifier leans to one task.

The copy and its forwards use no random state the run uses, so the run itself is step for step the
protocol run with the same arguments (its metrics.json and rows are identical).

    OMP_NUM_THREADS=1 PYTHONPATH=models/trainer/src $VENV/bin/python models/trainer/diagnostics/eval_diag.py \\
        run --strategy mir --dataset cifar10 --backbone reduced_resnet18 --tasks 5 --batch-size 10 \\
        --memory 500 --seed 1 --device cpu --threads 1 --quiet --report-dir /tmp/diag-mir-m500-s1
"""

import copy
import json
import sys

import torch
from torch import nn

import edgecl_train.train as T
from edgecl_train.cli import main as cli_main

rows: dict[str, list] = {"standard": [], "bn_from_memory": [], "pred_task_share": []}
_evaluate = T.evaluate


def evaluate(strategy, test, tasks, seen_classes):
    row, seen, til = _evaluate(strategy, test, tasks, seen_classes)
    rows["standard"].append([round(x, 1) for x in row])
    model = copy.deepcopy(strategy.model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    mx, _ = strategy.ctx.memory.all()
    perm = torch.randperm(len(mx), generator=torch.Generator().manual_seed(123))
    images, labels = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    task_of = {c: t.index for t in tasks for c in t.classes}
    acc, share = [], [0] * len(tasks)
    with torch.no_grad():
        for s in range(0, len(mx), 50):
            model(strategy.ctx.adapter(strategy.to_unit(mx[perm[s : s + 50]])))
        model.eval()
        for t in tasks:
            idx = torch.from_numpy(t.test_idx)
            logits = model(strategy.ctx.adapter(strategy.to_unit(images[idx])))[1].cpu()
            acc.append(round(100.0 * float((logits.argmax(1) == labels[idx]).float().mean()), 1))
            if set(t.classes) <= seen_classes:
                for p in strategy.scores(images[idx]).argmax(1).tolist():
                    share[task_of[p]] += 1
    rows["bn_from_memory"].append(acc)
    rows["pred_task_share"].append([round(100 * s / max(1, sum(share))) for s in share])
    print("DIAG", json.dumps({k: v[-1] for k, v in rows.items()}), flush=True)
    return row, seen, til


T.evaluate = evaluate
if __name__ == "__main__":
    try:
        cli_main(sys.argv[1:])
    except SystemExit:
        pass
    print("DIAG-ALL", json.dumps(rows))
