"""Every strategy learns on a small subset of the REAL Fashion-MNIST (../shared/data; a missing dataset
is an error, never a skip): 5 tasks x 2 classes, the first 100 training images of each class, 200 test
images of each class, the MLP backbone, 3 epochs of Adam (lr 1e-3), batch 16, memory 200, seed 0.

Chance is 10 % (class-IL, 10 classes) and 50 % (task-IL). The thresholds sit below what seed 0 gives
(measured: finetune class-IL 10 / task-IL 67; ER 57 / 96; GEM 73 / 98; iCaRL 60 / 98; GDumb 71 / 98;
SCR 73 / 98; MIR 47 / 91; A-GEM 28 / 77; EWC 20 / 87; online EWC 19 / 94; LwF 18 / 86; LwF.MC 24 / 98)
and well above chance, so a method that stops learning, or a replay method that stops replaying
(class-IL falls to the last task's 2 classes out of 10, about 20 %), fails.
"""

from dataclasses import replace

import numpy as np
import pytest

from edgecl_train.data import load_dataset
from edgecl_train.memory import MemoryConfig
from edgecl_train.scenario import ScenarioConfig
from edgecl_train.strategies import STRATEGIES
from edgecl_train.train import RunConfig, run


@pytest.fixture(scope="module")
def fmnist_subset():
    train, test = load_dataset("fashion-mnist")
    keep = np.concatenate([np.flatnonzero(train.labels == c)[:100] for c in range(10)])
    tk = np.concatenate([np.flatnonzero(test.labels == c)[:200] for c in range(10)])
    return train.subset(np.sort(keep)), test.subset(np.sort(tk))


def run_small(strategy, data, **opts):
    cls = STRATEGIES[strategy]
    o = replace(cls.Options(), optimizer="adam", lr=1e-3, **opts)
    cfg = RunConfig(strategy=strategy, dataset="fashion-mnist", backbone="mlp",
                    scenario=ScenarioConfig(n_tasks=5, online=False, epochs=3, batch_size=16),
                    memory=MemoryConfig(200 if cls.needs_memory else 0, cls.default_selector),
                    strategy_config=o, seed=0)
    return run(cfg, data=data).metrics


# strategy -> (min class-IL final average accuracy, min task-IL final average accuracy)
REPLAY = {"er": (40, 85), "gem": (50, 90), "icarl": (45, 90), "gdumb": (50, 90), "scr": (50, 90),
          "mir": (30, 80), "agem": (20, 65)}
# no memory: in class-IL they keep only the last task (the literature's result); they must learn each
# task (task-IL) and the last task (class-IL)
REGULARISATION = {"ewc": 75, "online_ewc": 75, "lwf": 70, "lwf_mc": 85}


@pytest.mark.parametrize("strategy", sorted(REPLAY))
def test_replay_method_learns_and_remembers(strategy, fmnist_subset):
    opts = {"mem_epochs": 10, "batch": 16} if strategy == "gdumb" else {}
    m = run_small(strategy, fmnist_subset, **opts)
    cil, til = REPLAY[strategy]
    assert m.final_average_accuracy >= cil, m.accuracy_matrix
    assert m.task_il_final_average_accuracy >= til, m.task_il_accuracy_matrix
    assert max(m.accuracy_matrix[-1][:-1]) > 25, m.accuracy_matrix  # an old task is still recognised


@pytest.mark.parametrize("strategy", sorted(REGULARISATION))
def test_regularisation_method_learns_each_task(strategy, fmnist_subset):
    m = run_small(strategy, fmnist_subset)
    assert m.task_il_final_average_accuracy >= REGULARISATION[strategy], m.task_il_accuracy_matrix
    assert max(m.accuracy_matrix[-1]) >= 40, m.accuracy_matrix  # class-IL: at least the last task


def test_gem_projects_and_beats_finetuning(fmnist_subset):
    ft = run_small("finetune", fmnist_subset)
    gem = run_small("gem", fmnist_subset)
    assert gem.final_average_accuracy > ft.final_average_accuracy + 30


def test_multihead_training_lifts_task_il_for_ewc(fmnist_subset):
    # task-IL training (each sample's cross-entropy over its own task's 2 classes) + EWC: every task's
    # task-IL accuracy stays high; the single-head run (above) keeps the last task only in class-IL.
    cls = STRATEGIES["ewc"]
    o = replace(cls.Options(), optimizer="adam", lr=1e-3)
    cfg = RunConfig(strategy="ewc", dataset="fashion-mnist", backbone="mlp",
                    scenario=ScenarioConfig(n_tasks=5, online=False, epochs=3, batch_size=16),
                    memory=MemoryConfig(0), strategy_config=o, seed=0, multihead=True)
    m = run(cfg, data=fmnist_subset).metrics
    assert m.task_il_final_average_accuracy >= 90, m.task_il_accuracy_matrix
    assert min(m.task_il_accuracy_matrix[-1]) >= 75, m.task_il_accuracy_matrix
