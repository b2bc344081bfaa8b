import numpy as np
import torch

from edgecl_train.memory import MemoryConfig, ReplayMemory, Selector, reservoir_slot


def test_reservoir_keeps_each_item_with_probability_m_over_n():
    n, m, trials = 60, 12, 3000
    rng = np.random.default_rng(1234)
    kept = np.zeros(n)
    for _ in range(trials):
        slots = [-1] * m
        for item in range(n):
            s = reservoir_slot(item, m, rng)
            if s is not None:
                slots[s] = item
        kept[slots] += 1
    p = kept / trials
    # Binomial sd = sqrt(0.2 * 0.8 / 3000) = 0.0073; allow 5 sd per item, and the mean is exact.
    assert np.all(np.abs(p - m / n) < 0.037), p
    assert kept.sum() == m * trials
    # early and late items are equally likely (no drift along the stream)
    assert abs(p[: n // 2].mean() - p[n // 2 :].mean()) < 0.02


def test_replay_memory_keeps_early_and_late_stream_items_alike():
    # 10 batches of 10 into 25 slots: under algorithm R each of the 100 items stays with probability 1/4,
    # so over 400 seeded runs each batch holds 2.5 slots on average (sd of the 400-run mean ~0.07).
    per_batch = np.zeros(10)
    for seed in range(400):
        mem = ReplayMemory(MemoryConfig(size=25), (1, 2, 2), np.random.default_rng(seed))
        for b in range(10):
            mem.add(torch.full((10, 1, 2, 2), b, dtype=torch.uint8), torch.full((10,), b), task=b // 2)
        x, y = mem.all()
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # image, label ...
        assert torch.equal(mem.task_ids(), y // 2)  # ... and task stay together
        per_batch += np.bincount(y.numpy(), minlength=10)
    assert np.all(np.abs(per_batch / 400 - 2.5) < 0.35), per_batch / 400


def test_memory_stores_logits_with_their_sample():
    mem = ReplayMemory(MemoryConfig(size=4), (1, 1, 1), np.random.default_rng(0))
    x = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    logits = torch.arange(6, dtype=torch.float32)[:, None] * torch.tensor([[1.0, -1.0]])
    mem.add(x, torch.arange(6), logits=logits)
    xs, _ = mem.all()
    assert torch.equal(mem.logits, xs.view(-1, 1).float() * torch.tensor([[1.0, -1.0]]))


def test_sample_can_exclude_the_current_task():
    mem = ReplayMemory(MemoryConfig(size=20), (1, 1, 1), np.random.default_rng(0))
    mem.add(torch.zeros(10, 1, 1, 1, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), task=0)
    mem.add(torch.ones(10, 1, 1, 1, dtype=torch.uint8), torch.ones(10, dtype=torch.long), task=1)
    _, y = mem.sample(8, exclude_task=1)
    assert len(y) == 8 and (y == 0).all()
    _, y = mem.sample(50, exclude_task=0)
    assert len(y) == 10 and (y == 1).all()


def test_class_balanced_selector_hand_sequence():
    # size 4. Stream labels 0,0,0,0 (memory: four 0s), then 1: quota 4//2 = 2, class 0 holds 4 -> a 0 gives
    # way; 1 again -> another 0; 1 a third time: class 1 holds its quota 2 -> dropped. Then 2: quota
    # 4//3 = 1; class 2 holds 0 -> the largest class (0 and 1 tie at 2: the first, 0) gives one slot.
    mem = ReplayMemory(MemoryConfig(size=4, selector=Selector.CLASS_BALANCED), (1, 1, 1), np.random.default_rng(3))
    for label in (0, 0, 0, 0, 1, 1, 1, 2):
        mem.add(torch.full((1, 1, 1, 1), label, dtype=torch.uint8), torch.tensor([label]))
    assert mem.class_counts() == {0: 1, 1: 2, 2: 1}
    x, y = mem.all()
    assert torch.equal(x.view(-1).long(), y)


def test_herding_selector_rebuilds_with_equal_shares():
    mem = ReplayMemory(MemoryConfig(size=4, selector=Selector.HERDING), (1, 1, 1), np.random.default_rng(0))
    feats = lambda x: torch.cat([x.view(-1, 1).float(), torch.ones(len(x), 1)], 1)  # noqa: E731
    # task 0: class 0 with values 0,1,2,10 and class 1 with 5,6: quota 4 // 2 = 2 each.
    x = torch.tensor([0, 1, 2, 10, 5, 6], dtype=torch.uint8).view(-1, 1, 1, 1)
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    mem.add(x, y)  # herding stores nothing from the stream
    assert len(mem) == 0
    mem.select_at_task_end(x, y, 0, feats)
    assert mem.class_counts() == {0: 2, 1: 2} and set(mem.task_ids().tolist()) == {0}
    # task 1 brings class 2: quota 4 // 3 = 1: each old class keeps its FIRST herding pick
    first0 = int(mem.images[0].item())
    x2 = torch.tensor([7, 8], dtype=torch.uint8).view(-1, 1, 1, 1)
    mem.select_at_task_end(x2, torch.tensor([2, 2]), 1, feats)
    xs, ys = mem.all()
    assert ys.tolist() == [0, 1, 2] and int(xs[0].item()) == first0
    assert mem.task_ids().tolist() == [0, 0, 1]
