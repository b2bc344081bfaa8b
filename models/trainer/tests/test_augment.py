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
