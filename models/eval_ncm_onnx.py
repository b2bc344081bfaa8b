#!/usr/bin/env python3
"""Frozen-backbone check of an exported model: NCM over its ONNX `features` (onnxruntime, one thread).

    $VENV/bin/python models/eval_ncm_onnx.py models/scr-rn18-cifar10.onnx [--dataset cifar10]

Class means come from ALL training images (L2-normalised features, renormalised means), the way the
device's NCM head would learn them; prints the accuracy on the test set. Preprocessing follows the
model's card (pixel_scale, mean, std; images resized bilinearly to the card's size if they differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "trainer" / "src"))

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", type=Path)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    from edgecl_train.data import load_dataset

    card = json.loads(a.onnx.with_suffix(".json").read_text())
    inp = card["input"]
    c = len(inp["mean"])
    mean = np.asarray(inp["mean"], np.float32).reshape(1, c, 1, 1)
    std = np.asarray(inp["std"], np.float32).reshape(1, c, 1, 1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(a.onnx), opts, providers=["CPUExecutionProvider"])
    train, test = load_dataset(a.dataset, a.data_dir)

    def feats(x: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(x), 128):
            b = torch.from_numpy(x[s : s + 128]).float()
            if b.shape[1] != c:
                b = b.expand(-1, c, -1, -1) if b.shape[1] == 1 else b.mean(1, keepdim=True)
            if tuple(b.shape[-2:]) != (inp["height"], inp["width"]):
                b = F.interpolate(b, size=(inp["height"], inp["width"]), mode="bilinear", align_corners=False)
            v = (b.numpy() * inp["pixel_scale"] - mean) / std
            out.append(sess.run([card["features"]["output"]], {inp["name"]: v.astype(np.float32)})[0])
        f = np.concatenate(out)
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    ftr, fte = feats(train.images), feats(test.images)
    classes = np.unique(train.labels)
    mu = np.stack([ftr[train.labels == k].mean(0) for k in classes])
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    pred = classes[np.argmin(((fte[:, None, :] - mu[None]) ** 2).sum(-1), 1)]
    acc = 100.0 * float((pred == test.labels).mean())
    print(f"{a.onnx}: NCM over all {len(train)} training images, {len(test)} test images: {acc:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
