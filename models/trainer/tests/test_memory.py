import numpy as np
import torch

from edgecl_train.memory import MemoryConfig, ReplayMemory, reservoir_slot


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


def test_replay_memory_fills_then_stays_at_its_size():
    mem = ReplayMemory(MemoryConfig(size=25), (3, 4, 4), np.random.default_rng(0))
    for b in range(10):
        x = torch.full((10, 3, 4, 4), b, dtype=torch.uint8)
        mem.add(x, torch.full((10,), b))
        assert len(mem) == min(25, 10 * (b + 1))
    assert mem.n_seen == 100
    x, y = mem.sample(7)
    assert x.shape == (7, 3, 4, 4) and len(y) == 7
    assert all((x[i] == y[i]).all() for i in range(7))  # image and label stay together
    x, y = mem.sample(100)
    assert len(y) == 25  # never more than what is stored
    assert sum(mem.class_counts().values()) == 25
