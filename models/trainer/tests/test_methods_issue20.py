"""LVT, PNN, DEN, Piggyback, CPG, VCL, AGS-CL: each method's defining computation against values worked
out by hand (the arithmetic in the comments)."""

import math

import numpy as np
import pytest
import torch

from edgecl_train.backbones import InputAdapter, build_backbone
from edgecl_train.memory import MemoryConfig, ReplayMemory, Selector
from edgecl_train.scenario import Task
from edgecl_train.strategies.agscl import prox_group_drift, prox_group_lasso
from edgecl_train.strategies.base import Context
from edgecl_train.strategies.cpg import CPG, CPGOptions
from edgecl_train.strategies.den import selected_units, soft_threshold
from edgecl_train.strategies.lvt import balanced_ce, confidence_select, key_drift_penalty
from edgecl_train.strategies.pnn import PNN, PNNOptions
from edgecl_train.strategies.taskil import binary_mask
from edgecl_train.strategies.vcl import gaussian_kl
from edgecl_train.vit import external_attention


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def tiny_ctx(n_in=1, n_classes=4):
    enc = build_backbone("mlp", channel_order="GRAY", height=1, width=n_in)
    return Context(encoder=enc, adapter=InputAdapter(enc.spec), n_classes=n_classes, image_size=(1, n_in),
                   memory=None, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def task(i, classes):
    return Task(i, classes, np.arange(4), np.arange(2))


def test_pnn_lateral_connection_hand_value():
    # one input, columns of width 1 and depth 2, no biases. x = 1.
    # column 0: h1 = relu(2x) = 2, h2 = relu(3 h1) = 6
    # column 1: h1 = relu(1x) = 1, h2 = relu(1 h1 + U (column 0's h1) ) = relu(1 + 0.5 * 2) = 2
    # task 1's features: [column 1's h2, column 0's h2] = [2, 6]; task 0's: [6]
    s = PNN(tiny_ctx(), PNNOptions(width=1, depth=2))
    s.before_task(task(0, (0, 1)))
    c0 = s.model.columns[0]
    with torch.no_grad():
        c0.layers[0].weight.fill_(2); c0.layers[1].weight.fill_(3)
        c0.layers[0].bias.zero_(); c0.layers[1].bias.zero_()
    s.before_task(task(1, (2, 3)))
    c1 = s.model.columns[1]
    with torch.no_grad():
        c1.layers[0].weight.fill_(1); c1.layers[1].weight.fill_(1)
        c1.layers[0].bias.zero_(); c1.layers[1].bias.zero_()
        c1.laterals[0][0].weight.fill_(0.5)
    x = t(1.0)[None]
    assert s.task_features(x, 1).tolist() == [[2.0, 6.0]]
    assert s.task_features(x, 0).tolist() == [[6.0]]
    # the old column is frozen; the new one and its laterals train
    assert not any(p.requires_grad for p in c0.parameters())
    assert c1.laterals[0][0].weight.requires_grad
    assert s.model_size()["columns"] == 2


def test_straight_through_binary_mask():
    # scores (0.01, 0.001), threshold 0.005 -> mask (1, 0). y = sum(W * mask * x), W = (2, 3), x = 1:
    # forward 2; d y / d scores = W * x = (2, 3) for both (the straight-through estimator passes the
    # mask's gradient to the scores, even where the mask is 0)
    s = t(0.01, 0.001).requires_grad_()
    m = binary_mask(s, 0.005)
    assert m.tolist() == [1.0, 0.0]
    y = (t(2, 3) * m).sum()
    y.backward()
    assert float(y.detach()) == 2.0 and s.grad.tolist() == [2.0, 3.0]


def test_cpg_effective_weights_and_compaction():
    # W = [[1, 2], [3, 4]], owner = [[0, 1], [1, -1]] (task 0 owns (0,0); task 1 owns (0,1), (1,0); (1,1) free)
    # task 1 picks (0,0) (score 0.01 > 0.005) and nothing else: W_eff = [[1*1, 2], [3, 0]]
    # task 0 sees only its own weight: [[1, 0], [0, 0]]
    s = CPG(tiny_ctx(n_in=2), CPGOptions(width=2, depth=1, prune=0.5, retrain_epochs=0, min_free=0.0))
    s.before_task(task(0, (0, 1)))
    s.before_task(task(1, (2, 3)))
    with torch.no_grad():
        s.model.weights[0].copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        s.model.owner[0] = torch.tensor([[0, 1], [1, -1]])
        s.model.picks[1][0].copy_(torch.tensor([[0.01, 0.01], [0.01, 0.001]]))
    assert s.effective(0, 1).tolist() == [[1.0, 2.0], [3.0, 0.0]]
    assert s.effective(0, 0).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # compacting task 1 with prune 0.5: of its two weights (2, 3) the smaller (2) is released
    s.compact(1)
    assert s.model.owner[0].tolist() == [[0, -1], [1, -1]]
    assert s.model.weights[0].tolist() == [[1.0, 0.0], [3.0, 4.0]]


def test_vcl_gaussian_kl_hand_values():
    # KL(N(mu_q, s_q^2) || N(mu_p, s_p^2)) = 1/2 (ln s_p^2/s_q^2 + (s_q^2 + (mu_q-mu_p)^2)/s_p^2 - 1)
    # N(1, 1) || N(0, 1): 1/2 (0 + 2 - 1) = 0.5
    assert float(gaussian_kl(t(1.0), t(0.0), t(0.0), t(0.0))) == pytest.approx(0.5)
    # N(0, 0.25) || N(0, 1): 1/2 (ln 4 + 0.25 - 1) = 0.318147...
    assert float(gaussian_kl(t(0.0), t(math.log(0.25)), t(0.0), t(0.0))) == pytest.approx(0.3181472, abs=1e-6)
    # N(2, 1) || N(1, 4): 1/2 (ln 4 + (1 + 1)/4 - 1) = 1/2 (1.386294 - 0.5) = 0.443147; summed with the first
    got = gaussian_kl(t(1.0, 2.0), t(0.0, 0.0), t(0.0, 1.0), t(0.0, math.log(4.0)))
    assert float(got) == pytest.approx(0.5 + 0.4431472, abs=1e-6)


def test_agscl_proximal_operators():
    # group lasso: row (3, 4), norm 5, step 1 -> scaled by 1 - 1/5 = 0.8 -> (2.4, 3.2); step 6 >= 5 -> 0
    assert prox_group_lasso(t(3, 4)[None], 1.0).flatten().tolist() == pytest.approx([2.4, 3.2])
    assert prox_group_lasso(t(3, 4)[None], 6.0).tolist() == [[0.0, 0.0]]
    # drift: theta (4, 4), old (1, 0): d = (3, 4), norm 5, step 2.5 -> d * 0.5 -> (1 + 1.5, 0 + 2) = (2.5, 2)
    got = prox_group_drift(t(4, 4)[None], t(1, 0)[None], t(2.5))
    assert got.flatten().tolist() == pytest.approx([2.5, 2.0])
    # a pull larger than the drift puts the node back exactly
    assert prox_group_drift(t(4, 4)[None], t(1, 0)[None], t(7.0)).tolist() == [[1.0, 0.0]]


def test_den_breadth_first_selection_and_soft_threshold():
    # head [2 outputs x 3 units]: only unit 1 has a non-zero weight -> last layer {1}
    # W2 [3 x 2]: unit 1's row (0, 5) -> first layer {1}
    head = torch.tensor([[0.0, 1.0, 0.0], [0.0, -2.0, 0.0]])
    w1 = torch.ones(2, 4)
    w2 = torch.tensor([[1.0, 1.0], [0.0, 5.0], [1.0, 0.0]])
    sel = selected_units([w1, w2], head)
    assert sel[1].tolist() == [False, True, False]
    assert sel[0].tolist() == [False, True]
    # soft threshold 0.5: (1.2, -0.3, -2) -> (0.7, 0, -1.5)
    assert soft_threshold(t(1.2, -0.3, -2.0), 0.5).tolist() == pytest.approx([0.7, 0.0, -1.5])


def test_lvt_inter_task_attention_hand_value():
    # one head, 2 tokens, d = 1. queries (1, 0); learned keys (ln 3, 0); values (4, 8)
    # token 0: softmax(ln 3, 0) = (3/4, 1/4) -> 3 + 2 = 5; token 1: softmax(0, 0) = (1/2, 1/2) -> 6
    q = torch.tensor([1.0, 0.0]).view(1, 1, 2, 1)
    keys = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1)
    v = torch.tensor([4.0, 8.0]).view(1, 1, 2, 1)
    out, att = external_attention(q, keys, v)
    assert out.flatten().tolist() == pytest.approx([5.0, 6.0])
    assert att[0, 0].flatten().tolist() == pytest.approx([0.75, 0.25, 0.5, 0.5])


def test_lvt_key_drift_penalty_and_balanced_ce():
    # importance 2 on a key that moved by (1, 2): 2 * (1 + 4) = 10; importance 0 on one that moved: 0
    keys = [torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])]
    old = [torch.zeros(1, 2, 2)]
    imp = [torch.tensor([[2.0, 0.0]])]
    assert float(key_drift_penalty(keys, old, imp)) == pytest.approx(10.0)
    # logits (0,0), (0,0), (ln 3, 0); labels 0, 0, 1: CE ln 2, ln 2, ln 4. Class-balanced: class 0's two
    # samples weigh 1/2 each -> ln 2; class 1 -> ln 4; mean over the 2 classes: 1.5 ln 2 (plain mean: 4/3 ln 2)
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(3.0), 0.0]])
    assert float(balanced_ce(logits, torch.tensor([0, 0, 1]))) == pytest.approx(1.5 * math.log(2.0), abs=1e-6)


def test_lvt_confidence_aware_class_balanced_memory():
    # memory of 4; task 0 brings classes 0, 1 (2 slots each): the two most confident images of each class.
    # task 1 brings class 2: 4 // 3 = 1 slot per class: old classes keep their most confident image.
    mem = ReplayMemory(MemoryConfig(4, Selector.CLASS_BALANCED), (1, 1, 1), np.random.default_rng(0))
    imgs = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    conf = torch.tensor([0.2, 0.9, 0.5, 0.4, 0.3, 0.8])
    confidence_select(mem, imgs, labels, 0, conf)
    x, y = mem.all()
    assert x.flatten().tolist() == [1, 2, 5, 3] and y.tolist() == [0, 0, 1, 1]
    imgs2 = torch.tensor([10, 11, 12], dtype=torch.uint8).view(3, 1, 1, 1)
    confidence_select(mem, imgs2, torch.tensor([2, 2, 2]), 1, torch.tensor([0.1, 0.7, 0.6]))
    x, y = mem.all()
    assert x.flatten().tolist() == [1, 5, 11] and y.tolist() == [0, 1, 2]
    assert mem.task_ids().tolist() == [0, 0, 1]


def test_cpg_grows_when_no_weights_are_free():
    # task 0 owns every weight (nothing compacted): before task 1 each hidden layer gets `grow` new units,
    # whose weights are free and go to task 1; task 0's view of them is zero
    s = CPG(tiny_ctx(n_in=2), CPGOptions(width=3, depth=2, retrain_epochs=0, grow=2, min_free=0.1))
    s.before_task(task(0, (0, 1)))
    s.before_task(task(1, (2, 3)))
    assert [w.shape for w in s.model.weights] == [(5, 2), (5, 5)]
    assert int((s.model.owner[1] == 1).sum()) == 25 - 9  # the new rows and columns
    x = torch.ones(1, 2)
    assert s.task_head(s.task_features(x, 0), 0).shape == (1, 2)
    assert s.effective(1, 0)[3:].abs().sum() == 0 and s.effective(1, 0)[:, 3:].abs().sum() == 0
