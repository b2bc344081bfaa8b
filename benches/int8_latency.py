"""The int8 backbone against its f32 parent: ONNX Runtime CPU latency, batch 1, measured side by side.

    ~/.cache/edgecl/venv/bin/python benches/int8_latency.py [--threads 1,2] [--rounds 7] [--iters 20]

Each model runs in its own worker process (two sessions in one process slow whichever runs second: the
other session's threads keep spinning, see benches/README.md), and the parent alternates them, f32 then
int8 then int8 then f32 (ABBA), with a short pause at every switch. A block is `--iters` runs after 3
warm-up runs; its time is the median run. Each round gives one int8/f32 ratio; the table shows the
median over rounds of each time and of the ratio, so a host whose speed drifts between rounds still
gives a fair ratio. Sessions as edgecl builds them: `ORT_ENABLE_ALL`, `--threads` intra-op threads, one
inter-op thread. Input: models/CARD.md's xorshift32 reference input, seed 3 (the one benches/backbone.rs
feeds). `--json` prints every block.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import pathlib
import statistics
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
MODELS = {"f32": REPO / "models/efficientnet-lite0.onnx", "int8": REPO / "models/efficientnet-lite0-int8.onnx"}


def xorshift32(seed: int, n: int):
    import numpy as np

    out = np.empty(n, dtype=np.float32)
    x = seed
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = (x >> 8) * 2.0**-23 - 1.0
    return out


def worker(path: str, threads: int, conn) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = xorshift32(3, 3 * 224 * 224).reshape(1, 3, 224, 224)
    conn.send(ort.__version__)
    while True:
        iters = conn.recv()
        if iters is None:
            return
        for _ in range(3):
            session.run(["features"], {"input": x})
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            session.run(["features"], {"input": x})
            times.append(time.perf_counter() - t)
        conn.send(statistics.median(times) * 1e3)


def measure(threads: int, rounds: int, iters: int, pause: float) -> dict:
    ctx = mp.get_context("spawn")
    procs, conns, version = {}, {}, None
    for name, path in MODELS.items():
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(str(path), threads, child), daemon=True)
        p.start()
        procs[name], conns[name] = p, parent
        version = parent.recv()
    blocks = {"f32": [], "int8": []}
    ratios = []
    for r in range(rounds):
        order = ["f32", "int8"] if r % 2 == 0 else ["int8", "f32"]
        got = {}
        for name in order:
            time.sleep(pause)
            conns[name].send(iters)
            got[name] = conns[name].recv()
            blocks[name].append(got[name])
        ratios.append(got["int8"] / got["f32"])
    for name in MODELS:
        conns[name].send(None)
        procs[name].join()
    return {
        "threads": threads, "onnxruntime": version, "rounds": rounds, "iters": iters,
        "f32_ms": statistics.median(blocks["f32"]), "int8_ms": statistics.median(blocks["int8"]),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "blocks": blocks,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between blocks")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    for name, path in MODELS.items():
        if not path.exists():
            raise SystemExit(f"benches/int8_latency.py: {path} is missing ({name})")
    results = [measure(int(t), a.rounds, a.iters, a.pause) for t in a.threads.split(",")]
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"onnxruntime {results[0]['onnxruntime']}, batch 1, {a.rounds} rounds of {a.iters} runs a side, "
          f"each model in its own process, alternating (ABBA)")
    print()
    print("| threads | f32 (ms) | int8 (ms) | int8 / f32 (median of rounds) | range over rounds | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['threads']} | {r['f32_ms']:.2f} | {r['int8_ms']:.2f} | {r['ratio']:.3f} | "
              f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {1 / r['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
