"""P3's backbone for the device's privacy mode: ResNet-32 trained on the first task only, exported.

The same first task as `bash models/reproduce.sh p3` (partial CIFAR-10, classes 0-1, the first 100
training images per class, 5 epochs, batch 32, Adam lr 1e-3, seed 0), fine-tuning (plain cross-entropy),
then ONNX + card. The device then learns tasks 2-5 over its frozen features with `edgecl eval`:

    $VENV/bin/python models/p3_privacy_backbone.py /tmp/p3-privacy/r32-task0.onnx
    edgecl eval --dataset cifar10 --model /tmp/p3-privacy/r32-task0.onnx --heads privacy,ncm,linear \\
        --steps 5 --increment 2 --train-limit 100 --seeds 0 --out /tmp/p3-privacy/report
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from edgecl_train.data import load_dataset
from edgecl_train.memory import MemoryConfig
from edgecl_train.scenario import ScenarioConfig
from edgecl_train.strategies import STRATEGIES
from edgecl_train.train import RunConfig, export_result, run


def main(out: str) -> None:
    torch.set_num_threads(1)
    train, test = load_dataset("cifar10")
    keep = np.concatenate([np.flatnonzero(train.labels == c)[:100] for c in (0, 1)])
    tk = np.flatnonzero(np.isin(test.labels, (0, 1)))
    # one task holding the 10 class names but only the images of classes 0 and 1
    data = (train.subset(np.sort(keep)), test.subset(tk))
    opts = STRATEGIES["finetune"].Options(optimizer="adam", lr=1e-3)
    cfg = RunConfig(strategy="finetune", dataset="cifar10", backbone="resnet32",
                    scenario=ScenarioConfig(n_tasks=1, online=False, epochs=5, batch_size=32),
                    memory=MemoryConfig(0), strategy_config=opts, seed=0)
    result = run(cfg, data=data)
    print(f"first task (classes 0-1) test accuracy: {result.metrics.accuracy_matrix[0][0]:.1f}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    report = export_result(result, out, name="p3-resnet32-task0",
                           command="python models/p3_privacy_backbone.py " + out)
    print(report.summary() if hasattr(report, "summary") else report)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/p3-privacy/r32-task0.onnx")
