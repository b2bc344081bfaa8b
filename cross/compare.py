#!/usr/bin/env python3
"""Compares two `edgecl classify --json` outputs (native and emulated): same predicted label and the same
ranking for every image, and every score within a tolerance. Prints the largest score difference.

    python3 cross/compare.py NATIVE.json OTHER.json TOLERANCE
"""
import json
import sys


def main():
    native_path, other_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    native = json.load(open(native_path))["predictions"]
    other = json.load(open(other_path))["predictions"]
    if len(native) != len(other):
        sys.exit(f"compare: {len(native)} predictions vs {len(other)}")
    worst, problems = 0.0, []
    for a, b in zip(native, other):
        name = a["path"].rsplit("/", 1)[-1]
        if name != b["path"].rsplit("/", 1)[-1]:
            problems.append(f"{name}: image order differs")
            continue
        if (a["label"], a["unknown"]) != (b["label"], b["unknown"]):
            problems.append(f"{name}: {a['label']} (unknown {a['unknown']}) vs {b['label']} (unknown {b['unknown']})")
        if [t["class"] for t in a["top"]] != [t["class"] for t in b["top"]]:
            problems.append(f"{name}: ranking differs")
        for ta, tb in zip(a["top"], b["top"]):
            worst = max(worst, abs(ta["score"] - tb["score"]))
    print(f"compare: {len(native)} images, same labels: {not problems}, max score difference {worst:.2e} "
          f"(tolerance {tol:g})")
    if worst > tol:
        problems.append(f"score difference {worst:.2e} exceeds {tol:g}")
    if problems:
        sys.exit("compare: " + "; ".join(problems))


if __name__ == "__main__":
    main()
