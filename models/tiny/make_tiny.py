#!/usr/bin/env python3
"""Make models/tiny/tiny.onnx + tiny.json: a few-KB CNN with seeded weights, for Rust tests.

    VENV=$(bash models/venv.sh | tail -n1)
    $VENV/bin/python models/tiny/make_tiny.py

input `input` [N,3,32,32] (RGB, pixel/255, stretch); conv3x3 3->8 s2 + ReLU, conv3x3 8->16 s2 + ReLU,
global average pool -> `features` [N,16]; linear 16->4 -> `logits` [N,4]. Weights are drawn from
numpy's PCG64 with a fixed seed (not torch's RNG), so they do not change with the torch version.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "trainer" / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from edgecl_train.card import InputSpec  # noqa: E402
from edgecl_train.export import card_for, export_onnx  # noqa: E402

SPEC = InputSpec(height=32, width=32, channel_order="RGB", pixel_scale=1.0 / 255.0,
                 mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize="stretch")
CLASSES = ["class0", "class1", "class2", "class3"]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        f = x.mean(dim=(2, 3))
        return f, self.fc(f)


def seeded_tiny(seed: int) -> Tiny:
    model = Tiny()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 8
            bound = float(np.sqrt(3.0 / fan_in)) * 2.0
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(p.shape)).astype(np.float32)))
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "tiny.onnx")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = seeded_tiny(args.seed)
    report = export_onnx(model, SPEC, args.out, with_logits=True, opset=17)
    print(report.summary(), file=sys.stderr)
    rel = Path(sys.argv[0]).resolve()
    try:
        rel = rel.relative_to(Path.cwd())
    except ValueError:
        pass
    command = "python " + shlex.join([str(rel), *(sys.argv[1:] if argv is None else argv)])
    card = card_for(
        report,
        name="tiny-test-cnn",
        spec=SPEC,
        provenance="Untrained test model: weights drawn by numpy PCG64 from the recipe's seed. Apache-2.0.",
        recipe={"command": command, "seed": args.seed, "note": "run from the repository root"},
        classes=CLASSES,
        accuracy={},
    )
    card.write(args.out.with_suffix(".json"))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
