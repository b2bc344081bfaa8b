"""Tiny train + export + parity runs through the real CLI, on synthetic data written in the real formats
(CIFAR-10 binary records; gzip IDX). Nothing outside the test's temporary folder is read."""

import gzip
import json
import struct

import numpy as np
import onnxruntime as ort
import pytest

from edgecl_train.card import reference_input, sha256_file
from edgecl_train.cli import main
from edgecl_train.data import load_cifar10, load_idx_dataset, read_cifar_bin, DatasetError

N_CLASSES = 4


def synthetic_images(n_per_class, channels, size, seed):
    """Class c: a bright square in quadrant c on noise, so the classes are learnable in a few steps."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    half = size // 2
    for c in range(N_CLASSES):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, size=(channels, size, size), dtype=np.uint8)
            r, q = divmod(c, 2)
            img[:, r * half : (r + 1) * half, q * half : (q + 1) * half] = 200 + c * 10
            xs.append(img)
            ys.append(c)
    return np.stack(xs), np.asarray(ys, dtype=np.uint8)


def write_cifar(folder, n_train=12, n_test=6):
    folder.mkdir(parents=True)
    for name, n, seed in (("train.bin", n_train, 1), ("test.bin", n_test, 2)):
        x, y = synthetic_images(n, 3, 32, seed)
        records = np.concatenate([y[:, None], x.reshape(len(y), -1)], axis=1).astype(np.uint8)
        records.tofile(folder / name)  # 1 label byte + R plane + G plane + B plane, 3073 bytes a record
    (folder / "labels.json").write_text(json.dumps({"label_names": ["n", "e", "s", "w"]}))


def write_idx(folder, n_train=12, n_test=6):
    folder.mkdir(parents=True)
    for split, n, seed in (("train", n_train, 3), ("t10k", n_test, 4)):
        x, y = synthetic_images(n, 1, 28, seed)
        img = struct.pack(">IIII", 0x803, len(y), 28, 28) + x[:, 0].tobytes()
        lab = struct.pack(">II", 0x801, len(y)) + y.tobytes()
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(lab)  # raw (not gzipped) is accepted too


def check_card(onnx_path, dim, logits):
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["format"] == "edgecl-model-card/1"
    assert card["sha256"] == sha256_file(onnx_path)
    assert card["features"] == {"output": "features", "dim": dim}
    assert card["logits"] == logits
    assert card["recipe"]["command"].startswith("python -m edgecl_train run")
    assert card["export"]["parity_max_abs_diff"]["features"] <= 1e-4
    inp = card["input"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = (1, 1 if inp["channel_order"] == "GRAY" else 3, inp["height"], inp["width"])
    for seed, ref in zip(card["reference"]["seeds"], card["reference"]["features"]):
        got = sess.run(["features"], {"input": reference_input(seed, shape)})[0][0]
        assert len(ref) == dim
        assert np.abs(got - np.asarray(ref)).max() <= card["reference"]["atol"]
    # dynamic batch axis
    batch = np.concatenate([reference_input(s, shape) for s in (1, 2, 3, 4, 5)])
    assert sess.run(["features"], {"input": batch})[0].shape == (5, dim)
    return card


def test_cifar_binary_loader_reads_real_layout(tmp_path):
    write_cifar(tmp_path / "c")
    train, test = load_cifar10(tmp_path / "c")
    x, y = synthetic_images(12, 3, 32, 1)
    assert np.array_equal(train.images, x) and np.array_equal(train.labels, y)
    assert train.classes == ["n", "e", "s", "w"] and len(test) == 24
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 3072)
    with pytest.raises(DatasetError):
        read_cifar_bin(tmp_path / "bad.bin")


def test_idx_loader_gz_and_raw(tmp_path):
    write_idx(tmp_path / "f")
    train, test = load_idx_dataset(tmp_path / "f", [str(i) for i in range(10)])
    x, y = synthetic_images(12, 1, 28, 3)
    assert train.images.shape == (48, 1, 28, 28) and np.array_equal(train.images, x)
    assert np.array_equal(test.labels, synthetic_images(6, 1, 28, 4)[1]) and train.channel_order == "GRAY"


def test_scr_train_export_parity_on_cifar_format(tmp_path):
    write_cifar(tmp_path / "cifar")
    out = tmp_path / "scr.onnx"
    rc = main(["run", "--strategy", "scr", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
               "--tasks", "2", "--memory", "16", "--mem-batch", "8", "--batch-size", "4", "--seed", "3",
               "--quiet", "--report-dir", str(tmp_path / "rep"), "--out", str(out)])
    assert rc == 0
    card = check_card(out, 160, None)
    assert card["classes"] == ["n", "e", "s", "w"]
    assert card["recipe"]["strategy"] == "scr" and card["recipe"]["memory"]["size"] == 16
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert card["accuracy"]["accuracy_matrix"] == m["accuracy_matrix"] and len(m["accuracy_matrix"]) == 2
    assert card["accuracy"]["final_average_accuracy"] == m["final_average_accuracy"]
    assert m["extra"]["config"]["strategy_config"]["mem_batch"] == 8  # the flag reached the strategy
    assert card["provenance"].count("random initialisation") == 1
    assert (tmp_path / "rep" / "accuracy.png").stat().st_size > 1000


def test_er_train_export_parity_on_idx_format(tmp_path):
    write_idx(tmp_path / "fm")
    out = tmp_path / "er.onnx"
    rc = main(["run", "--strategy", "er", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"),
               "--tasks", "2", "--memory", "16", "--batch-size", "4", "--quiet", "--out", str(out)])
    assert rc == 0
    card = check_card(out, 160, {"output": "logits", "classes": 10})
    assert card["input"]["channel_order"] == "GRAY" and card["input"]["height"] == 28


def test_joint_offline_is_one_row_over_all_tasks(tmp_path):
    write_cifar(tmp_path / "cifar", n_train=16, n_test=8)
    rc = main(["run", "--strategy", "joint", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
               "--tasks", "2", "--epochs", "2", "--batch-size", "8", "--quiet",
               "--report-dir", str(tmp_path / "rep")])
    assert rc == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert len(m["accuracy_matrix"]) == 1 and len(m["accuracy_matrix"][0]) == 2 and m["forgetting"] is None
    # task-IL picks among the task's classes only, so it is never below class-IL on the same scores
    assert all(t >= c for t, c in zip(m["task_il_accuracy_matrix"][0], m["accuracy_matrix"][0]))
    assert m["extra"]["config"]["scenario"]["epochs"] == 2 and not m["extra"]["config"]["scenario"]["online"]


def test_strategy_options_are_per_strategy(tmp_path, capsys):
    write_idx(tmp_path / "fm")
    args = ["run", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"), "--backbone", "mlp",
            "--tasks", "2", "--batch-size", "4", "--quiet", "--report-dir", str(tmp_path / "rep")]
    with pytest.raises(SystemExit, match="not an option of strategy ewc"):
        main(args + ["--strategy", "ewc", "--mem-batch", "5"])
    with pytest.raises(SystemExit, match="has options"):
        main(args + ["--strategy", "ewc", "-o", "gamma=0.5"])  # online_ewc's, not ewc's
    assert main(args + ["--strategy", "online_ewc", "-o", "gamma=0.5", "-o", "lam=7", "--optimizer", "adam",
                        "--lr", "0.001"]) == 0
    sc = json.loads((tmp_path / "rep" / "metrics.json").read_text())["extra"]["config"]["strategy_config"]
    assert sc["gamma"] == 0.5 and sc["lam"] == 7.0 and sc["optimizer"] == "adam" and "mem_batch" not in sc
    assert main(["options", "gem"]) == 0
    assert "margin = 0.5" in capsys.readouterr().out


def test_icarl_exports_features_only_and_gem_exports_logits(tmp_path):
    write_idx(tmp_path / "fm")
    for strategy, logits in (("icarl", None), ("gem", {"output": "logits", "classes": 10})):
        out = tmp_path / f"{strategy}.onnx"
        assert main(["run", "--strategy", strategy, "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"),
                     "--backbone", "mlp", "--tasks", "2", "--memory", "8", "--batch-size", "4", "--quiet",
                     "--out", str(out)]) == 0
        check_card(out, 400, logits)
