import numpy as np
import pytest
from PIL import Image

from edgecl_train.data import DatasetError, load_dataset, load_image_folder


def test_image_folder_with_and_without_split(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(["cat", "mug"]):
            d = tmp_path / "split" / split / name
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((40, 50, 3), 80 * c + i, dtype=np.uint8)).save(d / f"{i}.png")
    train, test = load_image_folder(tmp_path / "split", size=32)
    assert train.classes == ["cat", "mug"] and train.images.shape == (6, 3, 32, 32)
    assert len(test) == 6 and train.images[3, 0, 0, 0] == 80  # first "mug" image, stretched, same colour
    for c, name in enumerate(["a", "b"]):
        d = tmp_path / "flat" / name
        d.mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(d / f"{i}.jpg")
    train, test = load_image_folder(tmp_path / "flat", size=16, gray=True, test_fraction=0.2, seed=1)
    assert train.channel_order == "GRAY" and train.images.shape[1:] == (1, 16, 16)
    assert np.bincount(test.labels).tolist() == [2, 2] and len(train) == 16


def test_missing_dataset_is_a_loud_error(tmp_path):
    with pytest.raises(DatasetError, match="no CIFAR-10 binary files"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("fashion-mnist", tmp_path)
