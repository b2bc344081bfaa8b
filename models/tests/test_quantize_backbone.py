"""models/quantize_backbone.py on the 6.8 KB tiny model: preprocessing, node groups, calibration batches,
a QDQ quantization end to end with its card, and record-eval. No dataset needed; a few seconds.

    $VENV/bin/python -m pytest models/tests -q
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODELS))

import quantize_backbone as qb  # noqa: E402

TINY = MODELS / "tiny" / "tiny.onnx"


def spec(**kw):
    d = {"name": "input", "layout": "NCHW", "channel_order": "RGB", "height": 8, "width": 8, "pixel_scale": 1.0,
         "mean": [100.0, 100.0, 100.0], "std": [2.0, 2.0, 2.0], "resize": "stretch"}
    d.update(kw)
    return d


def test_preprocess_normalises_a_uniform_image_whatever_the_resize():
    img = np.full((1, 3, 20, 30), 110, np.uint8)
    for s in (spec(), spec(resize="shorter_side_crop", resize_shorter=16)):
        x = qb.preprocess(img, s)
        assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
        assert np.all(x == 5.0)


def test_shorter_side_crop_keeps_the_centre_and_gray_becomes_rgb():
    # 4 x 12 gray image: left third 0, middle third 200, right third 255. Shorter side 4 -> 8 (x2), then the
    # centred 8 x 8 window of the 8 x 24 image is the middle third only.
    img = np.zeros((1, 1, 4, 12), np.uint8)
    img[..., 4:8] = 200
    img[..., 8:] = 255
    x = qb.preprocess(img, spec(mean=[0.0] * 3, std=[1.0] * 3, resize="shorter_side_crop", resize_shorter=8))
    assert x.shape == (1, 3, 8, 8)
    assert np.all(x[:, :, :, 2:6] == 200.0)  # away from the window's edges bilinear sees only the middle
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 0], x[:, 2])


def test_cifar_crop_matches_edgecls_window():
    # edgecl crops 32 -> 256 -> centre 224: the source window is 28 x 28 at offset 2 (src/preprocess.rs).
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    s = spec(height=224, width=224, mean=[0.0] * 3, std=[1.0] * 3, resize="shorter_side_crop", resize_shorter=256)
    x = qb.preprocess(img, s)
    # Output pixel i of the crop is pixel i + 16 of the 256-pixel image, whose centre lies at source
    # coordinate (i + 16.5) / 8 - 0.5; for i = 4 + 8k that is k + 2.0625: 15/16 of pixel k+2, 1/16 of k+3.
    k = np.arange(27)
    src = img[0].astype(np.float64)
    rows = 0.9375 * src[:, 2 + k] + 0.0625 * src[:, 3 + k]
    want = 0.9375 * rows[:, :, 2 + k] + 0.0625 * rows[:, :, 3 + k]
    got = x[0][:, 4 + 8 * k][:, :, 4 + 8 * k]
    assert np.abs(got - want).max() <= 0.5 + 1e-3  # rounded to u8, as edgecl's resize writes u8


def test_node_groups_of_the_efficientnet_export():
    assert qb.node_group("/_conv_stem/Conv") == "stem"
    assert qb.node_group("/_blocks.12/_depthwise_conv/Conv") == "block.12"
    assert qb.node_group("/_conv_head/Conv") == "head"
    assert qb.node_group("/_swish_1/Clip") == "head"
    assert qb.node_group("/_avg_pooling/GlobalAveragePool") == "pool"
    assert qb.node_group("/_fc/Gemm") == "fc"
    assert qb.node_group("/conv1/Conv") == "other"
    assert sorted(["head", "block.10", "stem", "block.2", "fc"], key=qb._group_order) == \
        ["stem", "block.2", "block.10", "head", "fc"]


def test_reader_batches_and_strided_ranges():
    r = qb._Reader(np.zeros((20, 1), np.float32), "input", batch=8)
    assert len(r) == 3
    assert [len(b["input"]) for b in iter(r.get_next, None)] == [8, 8, 4]
    r.set_range(1, 2)
    assert [len(b["input"]) for b in iter(r.get_next, None)] == [8]


@pytest.fixture()
def tiny(tmp_path):
    shutil.copy(TINY, tmp_path / "tiny.onnx")
    shutil.copy(TINY.with_suffix(".json"), tmp_path / "tiny.json")
    return tmp_path / "tiny.onnx"


def test_quantizes_the_tiny_model_and_writes_a_card(tiny, tmp_path):
    import onnx

    card = json.loads(tiny.with_suffix(".json").read_text())
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8)
    calib, check = qb.preprocess(images[:32], card["input"]), qb.preprocess(images[32:], card["input"])
    out = tmp_path / "tiny-int8.onnx"
    s = qb.Settings(exclude=("/fc/Gemm",))
    qb.quantize(tiny, out, calib, s, "input", tmp_path)
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert len(m.graph.value_info) == 0  # stripped: tract 0.23 refuses the pre-processing's shapes
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    inits = {i.name for i in m.graph.initializer}
    assert gemm.input[1] in inits  # the excluded node keeps its float weight
    conv = next(n for n in m.graph.node if n.name == "/conv1/Conv")
    assert conv.input[1] not in inits  # a quantized one reads its weight through DequantizeLinear
    f32 = qb.run_features(qb.session(tiny), check)
    q8 = qb.run_features(qb.session(out), check)
    cos = (f32 * q8).sum(1) / (np.linalg.norm(f32, axis=1) * np.linalg.norm(q8, axis=1))
    assert cos.min() > 0.99, cos.min()

    choice = qb.ImageChoice("synthetic", "train", "48 seeded images", list(range(32)))
    path = qb.write_card(out, tiny, card, s, [choice], "synthetic:32", 1, None, 0.05, "python test")
    written = json.loads(path.read_text())
    assert written["sha256"] == qb.sha256_file(out)
    assert written["recipe"]["parent"] == {"onnx": "tiny.onnx", "sha256": card["sha256"], "name": card["name"]}
    assert written["recipe"]["quantization"]["exclude"] == ["/fc/Gemm"]
    assert written["input"] == card["input"] and written["features"] == card["features"]
    ref = written["reference"]
    assert ref["atol"] == 0.05 and ref["seeds"] == [1, 2, 3]
    x = qb.reference_input(2, (1, 3, 32, 32))
    assert np.allclose(ref["features"][1], qb.run_features(qb.session(out), x)[0], atol=1e-6)


def test_exclude_refuses_a_name_that_matches_nothing(tiny):
    import onnx

    with pytest.raises(SystemExit, match="matches no node"):
        qb.expand_exclude(onnx.load(str(tiny)), ("block.3",))


def test_record_eval_stores_per_head_deltas(tmp_path):
    card = {"sha256": "b" * 64, "recipe": {"parent": {"sha256": "a" * 64}}, "accuracy": {}}
    (tmp_path / "c.json").write_text(json.dumps(card))

    def report(sha, acc):
        return {"model_sha256": sha, "dataset": "cifar10", "train_images": 10, "test_images": 5,
                "protocol": {"steps": 5}, "memory_budget": 0, "memory_storage": "int8", "command": "edgecl eval",
                "heads": [{"head": "ncm", "final_accuracy": {"mean": acc, "std": 0.01},
                           "average_incremental": {"mean": acc + 0.1, "std": 0.0}}]}

    (tmp_path / "f.json").write_text(json.dumps(report("a" * 64, 0.80)))
    (tmp_path / "q.json").write_text(json.dumps(report("b" * 64, 0.795)))
    assert qb.main(["record-eval", "--protocol", "p", "--card", str(tmp_path / "c.json"),
                    str(tmp_path / "f.json"), str(tmp_path / "q.json")]) == 0
    got = json.loads((tmp_path / "c.json").read_text())["accuracy"]["edgecl_eval"]["p"]["heads"]["ncm"]
    assert got["final_accuracy"] == {"f32": 80.0, "int8": 79.5, "delta": -0.5}
    assert got["final_accuracy_std"] == {"f32": 1.0, "int8": 1.0}
    # A report made with another model is refused.
    (tmp_path / "q.json").write_text(json.dumps(report("c" * 64, 0.795)))
    with pytest.raises(SystemExit, match="made with model"):
        qb.main(["record-eval", "--protocol", "p", "--card", str(tmp_path / "c.json"),
                 str(tmp_path / "f.json"), str(tmp_path / "q.json")])
