"""Datasets in their real on-disk formats, loaded into memory as uint8 NCHW arrays.

- CIFAR-10 binary version: records of 1 label byte + 3072 pixel bytes (R, G, B planes, 32x32 each).
  A folder holding `train.bin`/`test.bin` (edgecl's shared partial copy) or the official
  `data_batch_{1..5}.bin`/`test_batch.bin`; class names from `labels.json` or `batches.meta.txt`.
- MNIST / Fashion-MNIST IDX files (`train-images-idx3-ubyte[.gz]`, ...), gzip or raw.
- An image folder: `ROOT/<class>/*.png|jpg|...`, or `ROOT/train/<class>/...` + `ROOT/test/<class>/...`.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp"}
DATASETS = ("cifar10", "cifar100", "fashion-mnist", "mnist", "folder")


class DatasetError(RuntimeError):
    pass


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    classes: list[str]  # name of label i
    channel_order: str  # "RGB" or "GRAY"

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DatasetError(f"images must be uint8 NCHW, got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.channel_order)


def default_data_root() -> Path:
    """`$EDGECL_DATA`, else `../shared/data` relative to the repository root."""
    env = os.environ.get("EDGECL_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[4]
    return (repo / ".." / "shared" / "data").resolve()


# ---------------------------------------------------------------- CIFAR-10 (binary version)

CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DatasetError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR records")
    rec = raw.reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(f"{path}: label {labels.max()} out of range 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def load_cifar10(root: str | Path) -> tuple[ImageSet, ImageSet]:
    root = Path(root)
    for cand in (root, root / "cifar10-partial", root / "cifar-10-batches-bin", root / "cifar10"):
        if (cand / "train.bin").exists():
            train_files, test_files = [cand / "train.bin"], [cand / "test.bin"]
            break
        if (cand / "data_batch_1.bin").exists():
            train_files = sorted(cand.glob("data_batch_*.bin"))
            test_files = [cand / "test_batch.bin"]
            break
    else:
        raise DatasetError(f"no CIFAR-10 binary files (train.bin or data_batch_1.bin) under {root}")
    names = list(CIFAR10_CLASSES)
    if (cand / "labels.json").exists():
        names = list(json.loads((cand / "labels.json").read_text())["label_names"])
    elif (cand / "batches.meta.txt").exists():
        names = [n for n in (cand / "batches.meta.txt").read_text().split("\n") if n.strip()]
    parts = [read_cifar_bin(f) for f in train_files]
    train = ImageSet(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names, "RGB")
    tx, ty = read_cifar_bin(test_files[0])
    return train, ImageSet(tx, ty, names, "RGB")


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


def _open_maybe_gz(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path: str | Path) -> np.ndarray:
    data = _open_maybe_gz(Path(path))
    if len(data) < 4:
        raise DatasetError(f"{path}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: header says {dims} but {body.size} bytes follow")
    return body.reshape(dims).copy()


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).exists():
            return root / name
    raise DatasetError(f"{stem}[.gz] not found under {root}")


def load_idx_dataset(root: str | Path, names: list[str]) -> tuple[ImageSet, ImageSet]:
    root = Path(root)
    out = []
    for split in ("train", "t10k"):
        x = read_idx(_find(root, f"{split}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{split}-labels-idx1-ubyte")).astype(np.int64)
        out.append(ImageSet(x[:, None, :, :], y, names, "GRAY"))
    return out[0], out[1]


# ---------------------------------------------------------------- image folder


def _read_image(path: Path, size: int, gray: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if gray else "RGB").resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[None] if gray else a.transpose(2, 0, 1)


def _scan_folder(root: Path, classes: list[str], size: int, gray: bool) -> ImageSet:
    xs, ys = [], []
    for label, name in enumerate(classes):
        d = root / name
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                xs.append(_read_image(f, size, gray))
                ys.append(label)
    if not xs:
        raise DatasetError(f"no images under {root}/<class>/")
    return ImageSet(np.stack(xs), np.asarray(ys, dtype=np.int64), classes, "GRAY" if gray else "RGB")


def load_image_folder(root: str | Path, *, size: int = 32, gray: bool = False, test_fraction: float = 0.2,
                      seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Images resized (stretched, bilinear) to size x size. Without train/ and test/ sub-folders, a
    seeded stratified split keeps `test_fraction` of each class for testing."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        return _scan_folder(root / "train", classes, size, gray), _scan_folder(root / "test", classes, size, gray)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders")
    full = _scan_folder(root, classes, size, gray)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(full), dtype=bool)
    for c in range(len(classes)):
        idx = np.flatnonzero(full.labels == c)
        rng.shuffle(idx)
        test_mask[idx[: int(round(len(idx) * test_fraction))]] = True
    return full.subset(np.flatnonzero(~test_mask)), full.subset(np.flatnonzero(test_mask))


# ---------------------------------------------------------------- CIFAR-100 (binary version)

CIFAR100_RECORD = 2 + 3 * 32 * 32  # coarse label, fine label, pixels


def load_cifar100(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """The official CIFAR-100 binary version (`cifar-100-binary/{train,test}.bin`, 3074-byte records:
    coarse label, fine label, 3072 CHW pixels); the fine labels (0..99) are the classes. Not in
    ../shared/data: pass --data-dir to a folder holding it."""
    root = Path(root)
    for cand in (root, root / "cifar-100-binary", root / "cifar100"):
        if (cand / "train.bin").exists() and (cand / "test.bin").exists():
            break
    else:
        raise DatasetError(f"no CIFAR-100 binary files (cifar-100-binary/train.bin, test.bin) under {root}")
    out = []
    for f in (cand / "train.bin", cand / "test.bin"):
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR100_RECORD:
            raise DatasetError(f"{f}: {raw.size} bytes is not a whole number of {CIFAR100_RECORD}-byte records")
        rec = raw.reshape(-1, CIFAR100_RECORD)
        labels = rec[:, 1].astype(np.int64)
        if labels.max() > 99:
            raise DatasetError(f"{f}: fine label {labels.max()} out of range 0..99")
        out.append((rec[:, 2:].reshape(-1, 3, 32, 32).copy(), labels))
    names = [f"class{i}" for i in range(100)]
    if (cand / "fine_label_names.txt").exists():
        names = [n for n in (cand / "fine_label_names.txt").read_text().split("\n") if n.strip()]
    return ImageSet(*out[0], names, "RGB"), ImageSet(*out[1], names, "RGB")


def load_dataset(name: str, root: str | Path | None = None, **folder_opts) -> tuple[ImageSet, ImageSet]:
    base = Path(root) if root is not None else default_data_root()
    if name == "cifar10":
        return load_cifar10(base)
    if name == "cifar100":
        return load_cifar100(base)
    if name == "fashion-mnist":
        return load_idx_dataset(base / "fashion-mnist" if (base / "fashion-mnist").is_dir() else base,
                                FASHION_MNIST_CLASSES)
    if name == "mnist":
        return load_idx_dataset(base / "mnist" if (base / "mnist").is_dir() else base, MNIST_CLASSES)
    if name == "folder":
        return load_image_folder(base, **folder_opts)
    raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
