"""Task-conditioned export end to end: PNN trained on synthetic CIFAR-format files (2 tasks of 2 classes) through the
real CLI, exported as one ONNX + card per task; the set-level checks of `verify_task_set` (what
`edgecl verify-model` is to check, models/CARD.md) pass, and fail on a tampered set."""

import json
import shutil

import numpy as np
import onnxruntime as ort

from edgecl_train.card import reference_input, sha256_file
from edgecl_train.cli import main
from edgecl_train.task_export import verify_task_set
from test_end_to_end import write_cifar


def test_pnn_exports_one_verified_file_per_task(tmp_path):
    write_cifar(tmp_path / "fm")
    out = tmp_path / "pnn.onnx"
    assert main(["run", "--strategy", "pnn", "--dataset", "cifar10", "--data-dir", str(tmp_path / "fm"),
                 "--backbone", "mlp", "--tasks", "2", "--epochs", "2", "--batch-size", "4", "--optimizer", "adam",
                 "--lr", "0.01", "-o", "width=8", "--quiet", "--out", str(out)]) == 0
    cards = [json.loads((tmp_path / f"pnn.task{t}.json").read_text()) for t in range(2)]
    for t, card in enumerate(cards):
        tc = card["task_conditioned"]
        assert tc["scheme"] == "file_per_task" and tc["task"] == t and tc["n_tasks"] == 2
        assert card["classes"] == tc["task_classes"] and len(tc["task_classes"]) == 2
        assert card["logits"] == {"output": "logits", "classes": 2}
        assert card["features"]["dim"] == 8 * (t + 1)  # PNN: task t reads columns 0..t
        assert tc["files"][t] == {"task": t, "onnx": f"pnn.task{t}.onnx", "sha256": sha256_file(tmp_path / card["onnx"])}
        assert verify_task_set(tmp_path / f"pnn.task{t}.json") == []
        sess = ort.InferenceSession(str(tmp_path / card["onnx"]), providers=["CPUExecutionProvider"])
        f, lg = sess.run(["features", "logits"], {"input": reference_input(1, (1, 3, 32, 32))})
        assert np.abs(f[0] - np.asarray(card["reference"]["features"][0])).max() <= 1e-4
        assert lg.shape == (1, 2)
    assert cards[0]["task_conditioned"]["files"] == cards[1]["task_conditioned"]["files"]
    assert not set(cards[0]["classes"]) & set(cards[1]["classes"])

    # a tampered set: task 1's file replaced by task 0's bytes
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path, bad, ignore=shutil.ignore_patterns("fm", "bad"))
    shutil.copy(bad / "pnn.task0.onnx", bad / "pnn.task1.onnx")
    problems = verify_task_set(bad / "pnn.task0.json")
    assert any("task 1: pnn.task1.onnx has sha256" in p for p in problems), problems
    # a card that does not list itself
    card = json.loads((bad / "pnn.task0.json").read_text())
    card["task_conditioned"]["task"] = 1
    (bad / "pnn.task0.json").write_text(json.dumps(card))
    assert any("does not list this file" in p for p in verify_task_set(bad / "pnn.task0.json"))
