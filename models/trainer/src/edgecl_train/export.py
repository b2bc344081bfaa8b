"""ONNX export with the checks the device relies on.

`export_onnx` writes the graph (input `input`, dynamic batch; outputs `features` and optionally
`logits`), runs `onnx.checker`, compares ONNX Runtime with PyTorch on the card's reference inputs
(max abs diff <= 1e-4, else `ParityError`), and returns what the model card needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .card import REFERENCE_ATOL, REFERENCE_SEEDS, Card, InputSpec, reference_input, sha256_file

DEFAULT_OPSET = 17
PARITY_TOL = 1e-4


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree by more than the tolerance."""


@dataclass
class ExportReport:
    path: Path
    sha256: str
    opset: int
    size_bytes: int
    max_abs_diff_features: float
    max_abs_diff_logits: float | None
    reference_features: list[list[float]]
    features_dim: int
    logits_classes: int | None

    def summary(self) -> str:
        s = (
            f"{self.path}: {self.size_bytes} bytes, opset {self.opset}, sha256 {self.sha256}; "
            f"onnxruntime vs PyTorch max abs diff: features {self.max_abs_diff_features:.3g}"
        )
        if self.max_abs_diff_logits is not None:
            s += f", logits {self.max_abs_diff_logits:.3g}"
        return s


def _outputs(module: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    with torch.no_grad():
        out = module(x)
    if isinstance(out, (tuple, list)):
        feats, logits = out[0], (out[1] if len(out) > 1 else None)
    else:
        feats, logits = out, None
    return feats.float().numpy(), (None if logits is None else logits.float().numpy())


def export_onnx(
    module: nn.Module,
    spec: InputSpec,
    path: str | Path,
    *,
    with_logits: bool,
    opset: int = DEFAULT_OPSET,
    tol: float = PARITY_TOL,
) -> ExportReport:
    """Export `module` (CPU, float32; returns features or (features, logits)) and check it."""
    import onnx
    import onnxruntime as ort

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    path = Path(path)
    module = module.cpu().float().eval()
    shape = (1, spec.channels, spec.height, spec.width)
    example = torch.from_numpy(reference_input(REFERENCE_SEEDS[0], shape))
    output_names = ["features", "logits"] if with_logits else ["features"]
    dynamic_axes = {name: {0: "batch"} for name in ["input", *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: self-contained file, plain static graph
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)

    sess_opts = ort.SessionOptions()
    sess_opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_opts, providers=["CPUExecutionProvider"])

    refs = [torch.from_numpy(reference_input(s, shape)) for s in REFERENCE_SEEDS]
    ref_feats: list[list[float]] = []
    diff_f = 0.0
    diff_l = 0.0
    # One at a time (the card's pairs) and all together (checks the dynamic batch axis).
    batch = torch.cat(refs, 0)
    torch_f, torch_l = _outputs(module, batch)
    onnx_out = sess.run(output_names, {"input": batch.numpy()})
    diff_f = max(diff_f, float(np.abs(onnx_out[0] - torch_f).max()))
    if with_logits:
        assert torch_l is not None
        diff_l = max(diff_l, float(np.abs(onnx_out[1] - torch_l).max()))
    for x in refs:
        f, lg = _outputs(module, x)
        ref_feats.append([float(v) for v in f[0]])
        o = sess.run(output_names, {"input": x.numpy()})
        diff_f = max(diff_f, float(np.abs(o[0] - f).max()))
        if with_logits:
            assert lg is not None
            diff_l = max(diff_l, float(np.abs(o[1] - lg).max()))
    if diff_f > tol or (with_logits and diff_l > tol):
        raise ParityError(
            f"{path}: onnxruntime vs PyTorch max abs diff features {diff_f:.3g}, logits {diff_l:.3g} > {tol}"
        )
    return ExportReport(
        path=path,
        sha256=sha256_file(path),
        opset=opset,
        size_bytes=path.stat().st_size,
        max_abs_diff_features=diff_f,
        max_abs_diff_logits=diff_l if with_logits else None,
        reference_features=ref_feats,
        features_dim=int(torch_f.shape[1]),
        logits_classes=None if torch_l is None else int(torch_l.shape[1]),
    )


def card_for(report: ExportReport, *, name: str, spec: InputSpec, provenance: str, recipe: dict,
             classes: list[str] | None = None, accuracy: dict | None = None) -> Card:
    return Card(
        name=name,
        onnx=report.path.name,
        sha256=report.sha256,
        input=spec,
        features_dim=report.features_dim,
        logits_classes=report.logits_classes,
        provenance=provenance,
        recipe=recipe,
        reference_features=report.reference_features,
        classes=list(classes or []),
        accuracy=dict(accuracy or {}),
        extra={
            "export": {
                "opset": report.opset,
                "torch": torch.__version__,
                "parity_max_abs_diff": {
                    "features": report.max_abs_diff_features,
                    "logits": report.max_abs_diff_logits,
                },
            }
        },
    )


__all__ = ["ExportReport", "ParityError", "card_for", "export_onnx", "DEFAULT_OPSET", "PARITY_TOL",
           "REFERENCE_ATOL"]
