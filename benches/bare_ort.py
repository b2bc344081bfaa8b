"""A bare ONNX Runtime session on the same model, input and thread count as `benches/backbone.rs`'s
`backbone/ort/1`, to show what edgecl's ort path adds. Prints the median of 30 runs after 5 warm-up runs.

    ~/.cache/edgecl/venv/bin/python benches/bare_ort.py [THREADS]
"""
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def xorshift32(seed: int, n: int) -> np.ndarray:
    """models/CARD.md's reference input generator (the bench feeds seed 3)."""
    out = np.empty(n, dtype=np.float32)
    x = seed
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = (x >> 8) * 2.0**-23 - 1.0
    return out


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    model = pathlib.Path(__file__).resolve().parent.parent / "models/efficientnet-lite0.onnx"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = xorshift32(3, 3 * 224 * 224).reshape(1, 3, 224, 224)
    for _ in range(5):
        session.run(["features"], {"input": x})
    times = []
    for _ in range(30):
        t = time.perf_counter()
        session.run(["features"], {"input": x})
        times.append(time.perf_counter() - t)
    print(f"bare onnxruntime {ort.__version__}, {threads} threads, batch 1: median {statistics.median(times) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
