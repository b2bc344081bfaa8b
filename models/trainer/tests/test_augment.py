import torch

from edgecl_train.augment import AugmentConfig, SCRAugment


def test_full_crop_with_flip_is_an_exact_mirror():
    x = torch.rand(4, 3, 32, 32)
    cfg = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, gray_p=0.0)
    y = SCRAugment((32, 32), cfg, torch.Generator().manual_seed(0))(x)
    assert torch.allclose(y, x.flip(-1), atol=1e-5)


def test_grayscale_and_range():
    x = torch.rand(16, 3, 32, 32)
    y = SCRAugment((32, 32), AugmentConfig(gray_p=1.0), torch.Generator().manual_seed(1))(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_default_augment_is_per_image_and_seeded():
    x = torch.rand(8, 3, 32, 32).expand(8, 3, 32, 32).clone()
    x[:] = x[0]
    a = SCRAugment((32, 32), generator=torch.Generator().manual_seed(2))(x)
    b = SCRAugment((32, 32), generator=torch.Generator().manual_seed(2))(x)
    assert torch.equal(a, b)  # same seed, same views
    assert not torch.allclose(a[0], a[1])  # identical inputs get different views


def test_kornia041_crop_is_integer_and_never_the_full_image():
    from edgecl_train.augment import Kornia041Augment

    aug = Kornia041Augment((32, 32), generator=torch.Generator().manual_seed(0))
    b = aug._crop_boxes(500, 32, 32)
    x0, y0, w, h = b.T
    assert torch.equal(b, b.round()) and (w < 32).all() and (h < 32).all() and (w > 0).all()
    assert (x0 + w <= 32).all() and (y0 + h <= 32).all()
    # the area is drawn in [0.2, 1] * 1024 before truncation: never below 0.2 * 1024 * ratio bounds
    assert ((w * h) >= (int((0.2 * 1024 * 0.75) ** 0.5) - 1) * (int((0.2 * 1024 / (4 / 3)) ** 0.5) - 1)).all()


def test_kornia041_brightness_is_additive_and_contrast_multiplicative():
    from edgecl_train.augment import AugmentConfig, Kornia041Augment

    # a constant grey image of 0.5, no crop change possible to its value, no grayscale; only brightness:
    # kornia 0.4.1 adds U(-0.4, 0.4), so values spread over [0.1, 0.9]; torchvision's factor would give
    # 0.5 * U(0.6, 1.4) = [0.3, 0.7].
    x = torch.full((400, 3, 8, 8), 0.5)
    cfg = AugmentConfig(flip_p=0.0, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0, gray_p=0.0)
    y = Kornia041Augment((8, 8), cfg, torch.Generator().manual_seed(1))(x)[:, 0, 4, 4]
    assert y.min() < 0.2 and y.max() > 0.8
    # contrast only: 0.5 * U(0.6, 1.4) (no mean blending): within [0.3, 0.7] and spread over it
    cfg = AugmentConfig(flip_p=0.0, jitter=(0.0, 0.4, 0.0, 0.0), jitter_p=1.0, gray_p=0.0)
    y = Kornia041Augment((8, 8), cfg, torch.Generator().manual_seed(2))(x)[:, 0, 4, 4]
    assert y.min() >= 0.3 - 1e-5 and y.max() <= 0.7 + 1e-5 and y.min() < 0.35 and y.max() > 0.65
