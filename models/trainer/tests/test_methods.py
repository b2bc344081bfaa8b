"""Each method's defining computation against values worked out by hand (in the comments), on inputs
small enough to follow on paper."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgecl_train.memory import herding_order
from edgecl_train.strategies.agem import agem_project
from edgecl_train.strategies.base import NCMScores
from edgecl_train.strategies.ewc import diagonal_fisher, ewc_penalty
from edgecl_train.strategies.gem import gem_project, solve_nonneg_qp
from edgecl_train.strategies.icarl import icarl_loss
from edgecl_train.strategies.lwf import distillation_ce
from edgecl_train.strategies.mir import mir_scores


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_agem_projects_only_a_conflicting_gradient():
    # g = (1, -3), g_ref = (1, 1): g.g_ref = -2 < 0, |g_ref|^2 = 2 -> g - (-2/2)(1, 1) = (2, -2)
    assert agem_project(t(1, -3), t(1, 1)).tolist() == [2.0, -2.0]
    # g = (3, -1): g.g_ref = 2 >= 0 -> unchanged
    assert agem_project(t(3, -1), t(1, 1)).tolist() == [3.0, -1.0]


def test_gem_qp_one_constraint_equals_the_a_gem_projection():
    # one old task, margin 0: min ||z-g||^2 s.t. (1,1).z >= 0 -> z = (2,-2) (up to GEM's eps 1e-3 on the
    # diagonal: v = 2 / 2.001, z = (1 + v, -3 + v))
    v = 2 / 2.001
    z = gem_project(t(1, -3), t(1, 1)[None], margin=0.0)
    assert z.tolist() == pytest.approx([1 + v, -3 + v], abs=1e-6)


def test_gem_qp_two_constraints_both_active():
    # g = (-2, 1), G = [(1, 0), (0.5, -1)]. Projecting on either constraint alone violates the other:
    #   only row 1 active: z = (0, 1), then 0.5*0 - 1 < 0;  only row 2: z = g + (2/1.25)(0.5,-1) = (-1.2,-0.6),
    #   z1 < 0. So both are active: z = (0, 0), with z = g + G^T v -> v2 = 1, v1 = 2 - 0.5 = 1.5 (>= 0).
    P = np.array([[1.0, 0.5], [0.5, 1.25]])  # G G^T
    q = np.array([-2.0, -2.0])  # G g
    v = solve_nonneg_qp(P, q, np.zeros(2))
    assert v.tolist() == pytest.approx([1.5, 1.0], abs=1e-9)
    z = gem_project(t(-2, 1), torch.tensor([[1.0, 0.0], [0.5, -1.0]]), margin=0.0, eps=0.0)
    assert z.tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_gem_qp_one_of_two_constraints_active_and_margin():
    # g = (-1, 3), G = [(1, 0), (1, 1)]: G g = (-1, 2). Row 1 alone: z = (0, 3), row 2 then 3 >= 0: done,
    # v = (1, 0). With margin 0.5 (GEM's default) both duals are at least 0.5: u = v - 0.5 solves
    # min 1/2 u'Pu + (q + P*0.5)'u, P = [[1,1],[1,2]], q + P*0.5 = (0, 3.5) -> u = 0, v = (0.5, 0.5),
    # z = g + 0.5*(1,0) + 0.5*(1,1) = (0, 3.5).
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert gem_project(t(-1, 3), G, margin=0.0, eps=0.0).tolist() == pytest.approx([0.0, 3.0], abs=1e-6)
    assert gem_project(t(-1, 3), G, margin=0.5, eps=0.0).tolist() == pytest.approx([0.0, 3.5], abs=1e-6)
    # no violated constraint: g itself
    assert gem_project(t(1, 3), G).tolist() == [1.0, 3.0]


def test_ewc_penalty_hand_value():
    # lam/2 * sum F (theta - anchor)^2 = 2/2 * (0.5 * 1^2 + 2 * 2^2) + 2/2 * (1 * (1-1)^2 + 1 * (2-0)^2)
    #                                  = 8.5 + 4 = 12.5 (two tasks)
    p = [t(1, 2)]
    got = ewc_penalty(p, [[t(0, 0)], [t(1, 0)]], [[t(0.5, 2)], [t(1, 1)]], lam=2.0)
    assert float(got) == pytest.approx(12.5)


def test_diagonal_fisher_of_a_zero_linear_model():
    # logits = W x + b with W = 0, b = 0 -> p = (0.5, 0.5); d CE / d W = (p - onehot(y)) x^T, d/db = p - onehot.
    #   x = (1, 2), y = 0: (p - e0) = (-0.5, 0.5): dW = [[-0.5, -1], [0.5, 1]], squared [[0.25, 1], [0.25, 1]]
    #   x = (2, 0), y = 1: (p - e1) = (0.5, -0.5): dW = [[1, 0], [-1, 0]],      squared [[1, 0], [1, 0]]
    #   mean: W [[0.625, 0.5], [0.625, 0.5]]; b: (0.25, 0.25)
    lin = nn.Linear(2, 2)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    fw, fb = diagonal_fisher(lin, [lin.weight, lin.bias], torch.tensor([[1.0, 2.0], [2.0, 0.0]]), torch.tensor([0, 1]))
    assert fw.flatten().tolist() == pytest.approx([0.625, 0.5, 0.625, 0.5])
    assert fb.tolist() == pytest.approx([0.25, 0.25])


def test_lwf_distillation_hand_value():
    # old logits (0, ln 3) -> softmax (0.25, 0.75); new logits (ln 3, 0) -> log-softmax (ln .75, ln .25)
    # -(0.25 ln 0.75 + 0.75 ln 0.25) = 0.0719205 + 1.0397208 = 1.1116413
    got = distillation_ce(t(math.log(3), 0)[None], t(0, math.log(3))[None], temperature=1.0)
    assert float(got) == pytest.approx(1.1116413, abs=1e-6)
    # T = 2 divides both: old (0, ln3/2) -> (1, sqrt3)/(1+sqrt3); new (ln3/2, 0) -> log((sqrt3, 1)/(1+sqrt3))
    s3 = math.sqrt(3)
    hand = -(1 / (1 + s3) * math.log(s3 / (1 + s3)) + s3 / (1 + s3) * math.log(1 / (1 + s3)))
    got2 = distillation_ce(t(math.log(3), 0)[None], t(0, math.log(3))[None], temperature=2.0)
    assert float(got2) == pytest.approx(hand, abs=1e-6)


def test_icarl_loss_targets_are_labels_for_new_and_old_model_for_old_classes():
    # seen classes [0, 1], old [0]; logits (ln 4, 0) -> sigmoid (0.8, 0.5); label 1.
    # old model's logit for class 0 is ln 4 -> target 0.8; class 1 target 1.
    # BCE class 0: -(0.8 ln 0.8 + 0.2 ln 0.2) = 0.1785148 + 0.3218876 = 0.5004024; class 1: -ln 0.5 = 0.6931472
    logits = torch.tensor([[math.log(4), 0.0, 5.0]])  # class 2 is unseen: ignored
    old = torch.tensor([[math.log(4), -7.0, 9.0]])
    got = icarl_loss(logits, torch.tensor([1]), seen=[0, 1], old=[0], old_logits=old)
    assert float(got) == pytest.approx(0.5004024 + 0.6931472, abs=1e-6)
    # without an old model the class-0 target is the one-hot 0: -ln(1 - 0.8) = 1.6094379
    got0 = icarl_loss(logits, torch.tensor([1]), seen=[0, 1], old=[], old_logits=None)
    assert float(got0) == pytest.approx(1.6094379 + 0.6931472, abs=1e-6)


def test_herding_order_hand_example():
    # 1-d features 0, 1, 2, 10: mean 3.25. k=1: closest to 3.25 is 2 (index 2). k=2: (2 + f)/2 closest
    # to 3.25 -> f closest to 4.5 among {0, 1, 10}: 1 (index 1). k=3: (3 + f)/3 -> f closest to 6.75: 10.
    f = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    assert herding_order(f, 3) == [2, 1, 3]
    assert herding_order(f, 9) == [2, 1, 3, 0]  # never more than there are, never twice


def test_ncm_scores_are_negative_distances_to_normalised_means():
    # class 0 samples (1,0),(0,1) -> mean (0.5,0.5) -> normalised (s,s), s = 1/sqrt2; class 2: (-1, 0).
    ncm = NCMScores(n_classes=3)
    ncm.fit(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]]), torch.tensor([0, 0, 2]))
    sc = ncm.scores(torch.tensor([[3.0, 0.0]]))  # normalised (1, 0)
    s = 1 / math.sqrt(2)
    assert sc[0, 0].item() == pytest.approx(-math.sqrt((1 - s) ** 2 + s**2), abs=1e-6)
    assert sc[0, 2].item() == pytest.approx(-2.0, abs=1e-6)
    assert sc[0, 1].item() == float("-inf")  # no mean, never predicted


def test_mir_scores_hand_example():
    # logits = W x, W = 0 (2x2, no bias). Stream sample x = (1, 0), y = 0: dCE/dW = (p - e0) x^T
    # = [[-0.5, 0], [0.5, 0]]; lr 1 -> W' = [[0.5, 0], [-0.5, 0]].
    # candidates:  a: x=(1,0), y=1: before ln 2, after -log(e^-.5 / (e^.5 + e^-.5)) = ln(1 + e) -> +0.6201145
    #              b: x=(0,1), y=0: logits stay 0 -> +0
    #              c: x=(1,0), y=0: after ln(1 + e^-1) = 0.3132617 -> 0.3132617 - 0.6931472 = -0.3798855
    lin = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(lin.weight)
    loss = nn.functional.cross_entropy(lin(torch.tensor([[1.0, 0.0]])), torch.tensor([0]))
    (gw,) = torch.autograd.grad(loss, [lin.weight])
    sc = mir_scores(lin, lambda call, x: call(x), {"weight": gw}, 1.0,
                    torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 0, 0]))
    assert sc.tolist() == pytest.approx([math.log(1 + math.e) - math.log(2), 0.0,
                                         math.log(1 + math.exp(-1)) - math.log(2)], abs=1e-6)
    assert lin.weight.abs().sum() == 0  # the virtual step did not touch the model


def test_mir_virtual_step_leaves_batchnorm_running_stats_to_the_model_forward():
    # The official code (mir_retrieve.py / MIR's utils.py) scores on a deep copy theta' = theta - lr * g and
    # runs both forwards in train mode: the model's running statistics move once (the forward before the
    # step), the copy's forward moves only the copy's. Written here the official way, with a deepcopy.
    import copy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)).train()
    x, y = torch.randn(8, 3) * 3 + 1, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    grads = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    official = copy.deepcopy(model)
    virtual = copy.deepcopy(official)
    with torch.no_grad():
        for n, p in virtual.named_parameters():
            p -= 0.1 * grads[n]
        want = (nn.functional.cross_entropy(virtual(x), y, reduction="none")
                - nn.functional.cross_entropy(official(x), y, reduction="none"))
    sc = mir_scores(model, lambda call, b: call(b), grads, 0.1, x, y)
    assert sc.tolist() == pytest.approx(want.tolist(), abs=1e-6)
    for (n, b), (_, b_ref) in zip(model.named_buffers(), official.named_buffers()):
        assert torch.equal(b, b_ref), n  # once, with theta's activations (the old code moved them twice)
    assert not torch.equal(model[1].running_mean, torch.zeros(4))  # the forward before the step did move them


def test_multihead_cross_entropy_runs_over_the_sample_task_only():
    # classes 0,1 -> task 0; 2,3 -> task 1. logits (0, ln 3, 5, 5), label 1: multi-head CE over {0, 1}:
    # -log(3 / (1 + 3)) = ln(4/3) = 0.2876821; the class-IL CE would be -log(3 / (1 + 3 + 2 e^5)).
    from types import SimpleNamespace

    from edgecl_train.strategies.base import Strategy

    fake = SimpleNamespace(ctx=SimpleNamespace(class_task=torch.tensor([0, 0, 1, 1])))
    fake.mask_to_task = lambda lg, y: Strategy.mask_to_task(fake, lg, y)
    logits = torch.tensor([[0.0, math.log(3), 5.0, 5.0]])
    assert float(Strategy.ce(fake, logits, torch.tensor([1]))) == pytest.approx(math.log(4 / 3), abs=1e-6)
    fake.ctx.class_task = None
    assert float(Strategy.ce(fake, logits, torch.tensor([1]))) == pytest.approx(
        -math.log(3 / (4 + 2 * math.exp(5))), abs=1e-5)


def test_cosine_schedule_restarts_each_task():
    # lr 0.1, 4 steps: after step k the lr is 0.1 * (1 + cos(pi k / 4)) / 2 = 0.0853553, 0.05, 0.0146447, 0
    from edgecl_train.strategies.base import Context, Options
    from edgecl_train.strategies.finetune import Finetune

    enc = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    enc.dim = 3
    ctx = Context(encoder=enc, adapter=nn.Identity(), n_classes=2, image_size=(2, 2), memory=None,
                  device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    s = Finetune(ctx, Options(lr=0.1, schedule="cosine"))
    s.begin_task_schedule(4)
    lrs = []
    for _ in range(4):
        s.step(s.model(torch.rand(2, 1, 2, 2))[1].sum())
        lrs.append(s.opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0853553, 0.05, 0.0146447, 0.0], abs=1e-6)
    s.begin_task_schedule(4)
    assert s.opt.param_groups[0]["lr"] == 0.1
