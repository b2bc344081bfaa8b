import math

import pytest
import torch

from edgecl_train.losses import supcon_loss


def unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def expected_supcon(vectors, labels, tau):
    """The SupCon formula written out with plain Python floats, independently of the code under test."""
    n = len(vectors)
    dot = [[sum(a * b for a, b in zip(vectors[i], vectors[j])) for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        denom = sum(math.exp(dot[i][a] / tau) for a in range(n) if a != i)
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        total += -sum(math.log(math.exp(dot[i][p] / tau) / denom) for p in pos) / len(pos)
    return total / n


def test_supcon_one_view_four_samples_hand_computed():
    # 4 samples, one view, labels 0,0,1,1; unit vectors at 0, 60, 180, 270 degrees; tau 0.5.
    # dot/tau from each anchor to the others (cosines / 0.5):
    #   anchor 0: to 1: 1, to 2: -2, to 3: 0                 positive: 1
    #   anchor 1: to 0: 1, to 2: -1, to 3: 2cos(210) = -sqrt3  positive: 0
    #   anchor 2: to 0: -2, to 1: -1, to 3: 0                positive: 3
    #   anchor 3: to 0: 0, to 1: -sqrt3, to 2: 0             positive: 2
    # each term: -log(e^{pos} / sum_{a != i} e^{a}) = log(sum) - pos
    s3 = math.sqrt(3)
    terms = [
        math.log(math.e + math.exp(-2) + 1) - 1,
        math.log(math.e + math.exp(-1) + math.exp(-s3)) - 1,
        math.log(math.exp(-2) + math.exp(-1) + 1) - 0,
        math.log(1 + math.exp(-s3) + 1) - 0,
    ]
    hand = sum(terms) / 4
    vecs = [unit(0), unit(60), unit(180), unit(270)]
    z = torch.tensor(vecs, dtype=torch.float32).unsqueeze(1)  # [4, 1 view, 2]
    got = supcon_loss(z, torch.tensor([0, 0, 1, 1]), temperature=0.5)
    assert float(got) == pytest.approx(hand, abs=1e-5)


def test_supcon_two_views_positives_include_other_view():
    # 2 samples x 2 views (SCR: the sample and its augmented copy), different labels.
    v1 = [unit(0), unit(90)]
    v2 = [unit(30), unit(120)]
    # Flattened view-major like the loss: [s0v1, s1v1, s0v2, s1v2]; anchor s0v1's only positive is s0v2.
    flat = v1 + v2
    labels_flat = [0, 1, 0, 1]
    z = torch.tensor([[v1[0], v2[0]], [v1[1], v2[1]]], dtype=torch.float32)  # [2, 2, 2]
    got = supcon_loss(z, torch.tensor([0, 1]), temperature=0.1)
    assert float(got) == pytest.approx(expected_supcon(flat, labels_flat, 0.1), abs=1e-4)


def test_supcon_rejects_anchor_without_positive():
    z = torch.nn.functional.normalize(torch.randn(3, 1, 4), dim=-1)
    with pytest.raises(ValueError):
        supcon_loss(z, torch.tensor([0, 1, 2]))
