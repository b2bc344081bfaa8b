"""Issue-7 targets in one run: edgecl's own costs against the backbone's, measured back to back.

    ORT_DYLIB_PATH=... ~/.cache/edgecl/venv/bin/python benches/targets.py [--rounds 3] [--time 3]

Each round runs `benches/ort_overhead.rs` (edgecl's ONNX Runtime embedding and a bare session on the
same library, model, input and thread count, each in its own process, alternating), then criterion's
`preprocess/decode_resize_normalise/1` and `ncm/classify_one/1000/1280`. Every ratio is taken within a round, against that round's embedding time,
and the table shows the median over rounds, so a machine whose speed drifts between rounds (a shared host,
thermal limits) still gives comparable ratios. Last, a bare session through onnxruntime's Python API (same
wheel) is timed once as a cross-check of the Rust bare session.
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def criterion(bench: str, filt: str, seconds: int) -> None:
    subprocess.run(["cargo", "bench", "--bench", bench, "--", filt, "--warm-up-time", "1",
                    "--measurement-time", str(seconds)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ort_overhead() -> tuple[float, float, float]:
    """(edgecl ms, bare ms, edgecl/bare - 1) from one `cargo bench --bench ort_overhead` run."""
    out = subprocess.run(["cargo", "bench", "--bench", "ort_overhead"], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    m = re.search(r"edgecl ([0-9.]+) ms, bare ([0-9.]+) ms, .*?([-+][0-9.]+)%", out)
    return float(m.group(1)) * 1e-3, float(m.group(2)) * 1e-3, float(m.group(3)) / 100


def median(path: str) -> float:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    est = json.loads((target / "criterion" / path / "new/estimates.json").read_text())
    return est["median"]["point_estimate"] * 1e-9


def python_bare() -> float:
    out = subprocess.run([sys.executable, str(REPO / "benches/bare_ort.py"), str(os.cpu_count())],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"median ([0-9.]+) ms", out).group(1)) * 1e-3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time", type=int, default=3, help="criterion measurement seconds per bench")
    a = ap.parse_args()
    if not os.environ.get("ORT_DYLIB_PATH"):
        sys.exit("benches/targets.py: set ORT_DYLIB_PATH to the onnxruntime library (benches/README.md)")
    rounds = []
    for r in range(a.rounds):
        ort, bare, overhead = ort_overhead()
        criterion("preprocess", "decode_resize_normalise", a.time)
        criterion("heads", "^ncm/classify_one/1000/1280$", a.time)
        row = {
            "ort": ort,
            "bare": bare,
            "overhead": overhead,
            "pre": median("preprocess/decode_resize_normalise/1"),
            "ncm": median("ncm/classify_one/1000_1280"),
        }
        rounds.append(row)
        ms = lambda s: f"{s * 1e3:.3f} ms"
        print(f"round {r + 1}: edgecl ort {ms(row['ort'])}, bare ort {ms(row['bare'])}, "
              f"preprocess {ms(row['pre'])}, ncm 1000x1280 {ms(row['ncm'])}", flush=True)
    med = lambda f: statistics.median(f(x) for x in rounds)
    print(f"bare session through the Python API, once: {python_bare() * 1e3:.3f} ms")
    print()
    print(f"| target ({len(rounds)} rounds, medians) | median | ratio | goal |")
    print("| --- | --- | --- | --- |")
    rows = [
        ("NCM classify, 1,000 classes x 1280-d", "ncm", lambda x: x["ncm"] / x["ort"],
         "< 1% of the embedding"),
        ("preprocess (decode + resize + normalise)", "pre", lambda x: x["pre"] / x["ort"],
         "< 10% of the embedding"),
        ("edgecl ort embedding vs bare session", "ort", lambda x: x["overhead"],
         "within 5%"),
    ]
    for name, key, ratio, goal in rows:
        t = med(lambda x: x[key])
        print(f"| {name} | {t * 1e3:.3f} ms | {med(ratio) * 100:+.1f}% | {goal} |")


if __name__ == "__main__":
    main()
