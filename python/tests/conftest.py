"""Shared fixtures: the repository's tiny test model (models/tiny, 32x32 RGB in, 16 features out) on
tract, images drawn with numpy, and the CLI binary for the cross-use tests.

Nothing outside the repository is needed. The tests import the *installed* edgecl (the wheel), never
the source folder: run them as `pytest python/tests` from anywhere but python/.
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = REPO / "models" / "tiny" / "tiny.onnx"
TINY_CARD = json.loads((REPO / "models" / "tiny" / "tiny.json").read_text())

# The colour families the tests learn: far apart in pixel space, so even the untrained tiny CNN maps
# them to separate feature clusters.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
}


def draw(colour, seed, height=32, width=32):
    """An H x W x 3 uint8 RGB image: a flat colour with per-pixel noise and a random bright square."""
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], dtype=np.float64)
    img = base + rng.normal(0.0, 18.0, size=(height, width, 3))
    y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
    img[y : y + height // 4, x : x + width // 4] += 25.0
    return np.clip(img, 0, 255).astype(np.uint8)


def ppm_bytes(img):
    """Binary PPM (P6) encoding of an H x W x 3 uint8 image: lossless, and the library decodes it."""
    h, w, _ = img.shape
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(img).tobytes()


def write_ppm(path, img):
    path = pathlib.Path(path)
    path.write_bytes(ppm_bytes(img))
    return path


@pytest.fixture
def tiny():
    return TINY


@pytest.fixture
def state(tmp_path):
    return tmp_path / "objects.edgecl"


@pytest.fixture
def learner(state):
    import edgecl

    return edgecl.Learner(state, TINY, runtime="tract", threads=1)


@pytest.fixture
def trained(learner):
    """A learner with red, green and blue learnt from 5 captures each (seeds 0-4)."""
    for c in COLOURS:
        assert learner.learn(c, [draw(c, s) for s in range(5)]) == 5
    return learner


@pytest.fixture
def cli():
    """The edgecl CLI: $EDGECL_CLI, else the debug build in $CARGO_TARGET_DIR (make test builds it)."""
    path = os.environ.get("EDGECL_CLI")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
        path = os.path.join(target, "debug", "edgecl")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        if os.environ.get("EDGECL_REQUIRE_CLI"):
            pytest.fail(f"EDGECL_REQUIRE_CLI is set but there is no CLI binary at {path}")
        pytest.skip(f"no edgecl CLI binary at {path} (set EDGECL_CLI)")
    return path


@pytest.fixture
def variant_model(tmp_path):
    """A second model: the tiny ONNX file with an unknown protobuf field appended (field 100, varint 1:
    parsers skip it), so its sha256 differs, and a card naming it `tiny-variant`."""
    import hashlib

    d = tmp_path / "variant"
    d.mkdir()
    onnx = TINY.read_bytes() + b"\xa0\x06\x01"
    (d / "variant.onnx").write_bytes(onnx)
    card = dict(TINY_CARD, name="tiny-variant", onnx="variant.onnx", sha256=hashlib.sha256(onnx).hexdigest())
    (d / "variant.json").write_text(json.dumps(card))
    return d / "variant.onnx"


def copy_model(dest_dir, stem):
    """The tiny model and its card copied into `dest_dir` as `stem`.onnx / `stem`.json."""
    dest_dir = pathlib.Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TINY, dest_dir / f"{stem}.onnx")
    shutil.copyfile(TINY.with_suffix(".json"), dest_dir / f"{stem}.json")
    return dest_dir / f"{stem}.onnx"
