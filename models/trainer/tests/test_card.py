import numpy as np
import pytest

from edgecl_train.card import reference_input


def test_xorshift32_pinned_first_values():
    # models/CARD.md: for seed 1 the first four values are these (the Rust side pins the same ones).
    x = reference_input(1, (1, 3, 2, 2)).ravel()
    assert x.dtype == np.float32
    assert x[:4].tolist() == [-0.9998741149902344, -0.9685051441192627, 0.23280811309814453, -0.8567627668380737]


def test_xorshift32_hand_step():
    # one step by hand for seed 1: 1 ^ 1<<13 = 8193; ^ >>17 = 8193; ^ <<5 = 8193 ^ 262176 = 270369
    assert reference_input(1, (1,))[0] == np.float32((270369 >> 8) * 2.0**-23 - 1.0)


def test_xorshift32_range_and_seeds():
    a = reference_input(2, (1, 3, 8, 8))
    b = reference_input(3, (1, 3, 8, 8))
    assert a.shape == (1, 3, 8, 8)
    assert (a >= -1).all() and (a < 1).all()
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError):
        reference_input(0, (1,))


def test_provenance_names_the_imagenet_initialisation():
    from edgecl_train.train import _init_words

    assert "ImageNet" in _init_words("efficientnet_lite0") and "random" not in _init_words("efficientnet_lite0")
    assert _init_words("reduced_resnet18") == "from random initialisation"
