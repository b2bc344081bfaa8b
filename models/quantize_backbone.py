#!/usr/bin/env python3
"""Quantize an exported backbone to int8 (ONNX Runtime static quantization) and write its model card.

    VENV=$(bash models/venv.sh | tail -n1)
    # the shipped int8 model (the settings chosen by the sweep below)
    $VENV/bin/python models/quantize_backbone.py
    # compare settings (per-channel / per-tensor, QDQ / QOperator, calibration method, exclusions)
    $VENV/bin/python models/quantize_backbone.py sweep
    # per-block sensitivity: each group of nodes left in float alone, and quantized alone
    $VENV/bin/python models/quantize_backbone.py sensitivity
    # copy `edgecl eval` results (f32 and int8 report.json pairs) into the int8 card's accuracy
    $VENV/bin/python models/quantize_backbone.py record-eval --protocol cifar10-all F32/report.json INT8/report.json

Calibration images are real images from ../shared/data ($EDGECL_DATA), preprocessed exactly as the
card says (channel order, `shorter_side_crop` or `stretch` resize, bilinear, rounded to u8, then
`(pixel * pixel_scale - mean) / std`), the way `edgecl eval` feeds the model. They come from the
training splits only, never from a test split: CIFAR-10 training images drawn by the seed, and
Fashion-MNIST training images outside the first 1,000 of each class (the subset the README's
`edgecl eval --train-limit 1000` runs learn from), so no calibration image is ever scored.

The int8 card names its f32 parent (file and sha256), the calibration set, the quantization settings
and the measured accuracy (this script's NCM check, and `edgecl eval` via `record-eval`). Its
`reference` features are the int8 model's own (onnxruntime, one thread), so `edgecl verify-model`
checks the int8 graph; `atol` is wider than the f32 card's 1e-4 because another runtime (tract) may
round an int8 value one step differently (`--atol`; the README gives the measured differences).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "trainer" / "src"))

import numpy as np  # noqa: E402

from edgecl_train.card import REFERENCE_SEEDS, reference_input, sha256_file  # noqa: E402
from edgecl_train.data import default_data_root, load_dataset  # noqa: E402

DEFAULT_PARENT = HERE / "efficientnet-lite0.onnx"
# Images per class edgecl eval's README runs use from Fashion-MNIST (--train-limit 1000): calibration
# images come from beyond them.
FASHION_EVAL_TRAIN_LIMIT = 1000
DEFAULT_CALIB = "cifar10:256,fashion-mnist:256"


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Settings:
    """One quantization recipe: everything that changes the int8 file except the calibration images."""

    format: str = "qdq"  # qdq | qoperator
    per_channel: bool = True
    activation_type: str = "uint8"  # uint8 | int8
    weight_type: str = "int8"
    calibrate: str = "minmax"  # minmax | entropy | percentile
    percentile: float = 99.999
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()  # node groups (stem, block.N, head, pool, fc) or exact node names
    preprocess: bool = True  # onnxruntime.quantization.quant_pre_process first

    def label(self) -> str:
        s = f"{self.format} {'per-channel' if self.per_channel else 'per-tensor'} " \
            f"a:{self.activation_type} w:{self.weight_type} {self.calibrate}"
        if self.calibrate == "percentile":
            s += f"({self.percentile})"
        if self.reduce_range:
            s += " reduce_range"
        if self.exclude:
            s += " float:" + "+".join(self.exclude)
        return s


def node_group(name: str) -> str:
    """The group a node of the EfficientNet-Lite export belongs to (`stem`, `block.N`, `head`, `pool`, `fc`),
    or `other` for a name this export does not use."""
    m = re.search(r"/_blocks\.(\d+)/", name)
    if m:
        return f"block.{int(m.group(1))}"
    if "/_conv_stem/" in name or "/_bn0" in name or name.startswith("/_swish/"):
        return "stem"
    if "/_conv_head/" in name or "/_bn1" in name or name.startswith("/_swish_1/"):
        return "head"
    if "/_avg_pooling/" in name or name.startswith("/Flatten"):
        return "pool"
    if "/_fc/" in name:
        return "fc"
    return "other"


def expand_exclude(model, exclude: tuple[str, ...]) -> list[str]:
    """Node names for a list of groups / exact names; an entry that matches nothing is an error."""
    names = [n.name for n in model.graph.node]
    out: list[str] = []
    for item in exclude:
        hit = [n for n in names if n == item or node_group(n) == item]
        if not hit:
            groups = sorted({node_group(n) for n in names}, key=_group_order)
            raise SystemExit(f"--exclude {item!r} matches no node (groups: {', '.join(groups)})")
        out += [n for n in hit if n not in out]
    return out


def _group_order(g: str) -> tuple[int, int]:
    if g.startswith("block."):
        return (1, int(g.split(".")[1]))
    return ({"stem": 0, "head": 2, "pool": 3, "fc": 4}.get(g, 5), 0)


# ---------------------------------------------------------------------------------------------------
# Images: the card's preprocessing


def preprocess(images: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 [N, C, h, w] -> the model's float32 input [N, C', H, W], as the card says (models/CARD.md).

    `shorter_side_crop`: the shorter side scaled to `resize_shorter`, then the centred H x W window; one
    bilinear pass (half-pixel centres, antialiased when shrinking), rounded to u8, as edgecl's
    fast_image_resize pass does. Gray images are repeated to RGB (edgecl's `to_rgb8`); RGB to GRAY uses
    the channel mean."""
    import torch
    import torch.nn.functional as F

    c_out = 1 if spec["channel_order"] == "GRAY" else 3
    H, W = spec["height"], spec["width"]
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.shape[1] != c_out:
        x = x.expand(-1, c_out, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True).round()
    if spec["channel_order"] == "BGR":
        x = x.flip(1)
    h, w = x.shape[-2:]
    if spec["resize"] == "stretch":
        size, crop = (H, W), None
    else:
        scale = spec.get("resize_shorter") or min(H, W)
        scale = scale / min(h, w)
        size = (round(h * scale), round(w * scale))
        crop = ((size[0] - H) // 2, (size[1] - W) // 2)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                          antialias=size[0] < h or size[1] < w)
    if crop is not None:
        x = x[..., crop[0] : crop[0] + H, crop[1] : crop[1] + W]
    x = x.round().clamp(0, 255)
    mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return ((x * spec["pixel_scale"] - mean) / std).contiguous().numpy()


@dataclass
class ImageChoice:
    """Which images of which split: recorded in the card."""

    dataset: str
    split: str
    rule: str
    indices: list[int] = field(default_factory=list)
    data_file_sha256: dict[str, str] = field(default_factory=dict)


def _data_files(dataset: str, root: Path) -> dict[str, str]:
    if dataset == "cifar10":
        d = root / "cifar10-partial" if (root / "cifar10-partial").is_dir() else root / "cifar10"
        files = [d / "train.bin"]
    else:
        d = root / "fashion-mnist"
        files = [d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz"]
    return {str(f.relative_to(root)): sha256_file(f) for f in files if f.exists()}


def pick_train_images(dataset: str, count: int, seed: int, root: Path, skip: set[int] = frozenset(),
                      ) -> tuple[np.ndarray, np.ndarray, ImageChoice]:
    """`count` training images drawn by `seed` (never test images). Fashion-MNIST: only images outside the
    first FASHION_EVAL_TRAIN_LIMIT of each class. `skip`: indices already used (calibration vs check)."""
    train, _ = load_dataset(dataset, root)
    labels = train.labels
    allowed = np.ones(len(labels), bool)
    rule = f"{dataset} training split, {count} images drawn by numpy default_rng({seed}) without replacement"
    if dataset == "fashion-mnist":
        rank = np.zeros(len(labels), np.int64)
        for k in np.unique(labels):
            idx = np.flatnonzero(labels == k)
            rank[idx] = np.arange(len(idx))
        allowed &= rank >= FASHION_EVAL_TRAIN_LIMIT
        rule += (f", only from images after the first {FASHION_EVAL_TRAIN_LIMIT} of each class "
                 f"(outside edgecl eval's --train-limit {FASHION_EVAL_TRAIN_LIMIT} subset)")
    if skip:
        allowed[list(skip)] = False
        rule += ", excluding the calibration images"
    pool = np.flatnonzero(allowed)
    idx = np.sort(np.random.default_rng(seed).choice(pool, size=count, replace=False))
    choice = ImageChoice(dataset, "train", rule, [int(i) for i in idx], _data_files(dataset, root))
    return train.images[idx], labels[idx], choice


def parse_calib(spec: str) -> list[tuple[str, int]]:
    out = []
    for part in spec.split(","):
        name, _, n = part.partition(":")
        if name not in ("cifar10", "fashion-mnist") or not n.isdigit() or int(n) <= 0:
            raise SystemExit(f"--calib wants DATASET:COUNT[,...] with DATASET cifar10|fashion-mnist, got {part!r}")
        out.append((name, int(n)))
    return out


def calibration_set(spec: str, seed: int, root: Path, input_spec: dict
                    ) -> tuple[np.ndarray, list[ImageChoice]]:
    xs, choices = [], []
    for name, n in parse_calib(spec):
        imgs, _, choice = pick_train_images(name, n, seed, root)
        xs.append(preprocess(imgs, input_spec))
        choices.append(choice)
    return np.concatenate(xs), choices


# ---------------------------------------------------------------------------------------------------
# Quantization


class _Reader:
    """CalibrationDataReader over a preprocessed array, in batches."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int = 8):
        self.x, self.name, self.batch = x, input_name, batch
        self.set_range(0, len(self))

    def __len__(self) -> int:  # in batches
        return -(-len(self.x) // self.batch)

    def set_range(self, start_index: int, end_index: int) -> None:
        """The quantizer's strided calibration: batches [start, end) only."""
        self.i, self.end = start_index, min(end_index, len(self))

    def get_next(self):
        if self.i >= self.end:
            return None
        b = self.x[self.i * self.batch : (self.i + 1) * self.batch]
        self.i += 1
        return {self.name: b}


def prepare(parent: Path, workdir: Path) -> Path:
    """quant_pre_process (shape inference + onnxruntime's basic graph optimisation): constant-folds the
    export's padding arithmetic so the quantizer sees plain Pad -> Conv -> Clip chains."""
    from onnxruntime.quantization import quant_pre_process

    out = workdir / "prepared.onnx"
    if not out.exists():
        quant_pre_process(str(parent), str(out), skip_symbolic_shape=True)
    return out


def quantize(prepared: Path, out: Path, calib: np.ndarray, s: Settings, input_name: str,
             cache_dir: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(prepared))
    exclude = expand_exclude(model, s.exclude)
    out.parent.mkdir(parents=True, exist_ok=True)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[s.calibrate]
    reader = _Reader(calib, input_name)
    # Strided calibration: the calibrator sees STRIDE batches at a time and merges the ranges (histograms
    # for entropy / percentile), so memory does not grow with the image count. (Not
    # CalibMaxIntermediateOutputs: in onnxruntime 1.32 MinMaxCalibrater.collect_data drops the outputs it
    # caps instead of merging them.)
    stride = next(k for k in (4, 3, 2, 1) if len(reader) % k == 0)
    extra = {"CalibStridedMinMax": stride}
    if s.calibrate == "percentile":
        extra["CalibPercentile"] = s.percentile
    # The tensor ranges depend only on the calibration images, the method and the prepared graph: one
    # cache per combination, so a sweep calibrates once per method.
    cache = cache_dir / f"calib-{s.calibrate}{'-' + str(s.percentile) if s.calibrate == 'percentile' else ''}.json"
    with _quiet():
        quantize_static(
            str(prepared), str(out), reader,
            quant_format=QuantFormat.QDQ if s.format == "qdq" else QuantFormat.QOperator,
            per_channel=s.per_channel, reduce_range=s.reduce_range,
            activation_type=qtype[s.activation_type], weight_type=qtype[s.weight_type],
            nodes_to_exclude=exclude, calibrate_method=method, extra_options=extra,
            calibration_cache_path=str(cache),
        )
    # The pre-processing's value_info (intermediate shapes with the symbolic batch axis) makes tract 0.23
    # fail its analysis of the first Conv ("Failed analyse for node /_conv_stem/Conv ConvHir") when the
    # input is given as [1, 3, 224, 224]; the shapes are optional, both runtimes infer them.
    q = onnx.load(str(out))
    del q.graph.value_info[:]
    onnx.save(q, str(out))


class _quiet:
    """The quantizer logs a warning per call (pre-processing advice, which we did); keep stderr readable."""

    def __enter__(self):
        import logging

        self.level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc):
        import logging

        logging.getLogger().setLevel(self.level)


def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def run_features(sess, x: np.ndarray, output: str = "features", batch: int = 32) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run([output], {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


# ---------------------------------------------------------------------------------------------------
# Measuring: feature error and an NCM check (the head edgecl eval's final accuracy reduces to)


@dataclass
class CheckSet:
    """Held-out images for comparing a candidate with its parent: raw u8 images, preprocessed lazily."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    rule: str


def check_sets(root: Path, per_class_train: int, per_class_val: int, calib: list[ImageChoice]) -> list[CheckSet]:
    """NCM check sets from the TRAINING splits only (so choosing settings never looks at a test image):
    class means from the first `per_class_train` training images of each class, scored on the last
    `per_class_val` training images of each class that are not calibration images; CIFAR-10 and
    Fashion-MNIST."""
    out = []
    for name in ("cifar10", "fashion-mnist"):
        tr, _ = load_dataset(name, root)
        skip = {i for c in calib if c.dataset == name for i in c.indices}
        a, b = [], []
        for c in np.unique(tr.labels):
            idx = np.flatnonzero(tr.labels == c)
            a.append(idx[:per_class_train])
            rest = [i for i in idx[per_class_train:] if i not in skip]
            b.append(np.asarray(rest[-per_class_val:]))
        a, b = np.concatenate(a), np.concatenate(b)
        out.append(CheckSet(name, tr.images[a], tr.labels[a], tr.images[b], tr.labels[b],
                            f"training split only: class means from the first {per_class_train} images of each "
                            f"class, scored on the last {per_class_val} of each class that are not calibration "
                            f"images"))
    return out


def ncm_accuracy(ftr, ytr, fte, yte) -> float:
    def norm(f):
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    ftr, fte = norm(ftr), norm(fte)
    classes = np.unique(ytr)
    mu = norm(np.stack([ftr[ytr == k].mean(0) for k in classes]))
    pred = classes[np.argmax(fte @ mu.T, 1)]
    return 100.0 * float((pred == yte).mean())


class FeatureCache:
    """Features of the check images per model sha256 (the f32 parent's are computed once)."""

    def __init__(self, d: Path):
        self.d = d
        d.mkdir(parents=True, exist_ok=True)

    def get(self, model: Path, key: str, x_fn, spec: dict, threads: int) -> np.ndarray:
        f = self.d / f"{sha256_file(model)[:16]}-{key}.npy"
        if f.exists():
            return np.load(f)
        sess = session(model, threads)
        imgs = x_fn()
        feats = np.concatenate([run_features(sess, preprocess(imgs[i : i + 256], spec))
                                for i in range(0, len(imgs), 256)])
        np.save(f, feats)
        return feats


def measure(model: Path, parent: Path, sets: list[CheckSet], spec: dict, cache: FeatureCache, threads: int,
            key: str) -> dict:
    out = {}
    for s in sets:
        k = f"{key}-{s.name}"
        pf = (cache.get(parent, k + "-train", lambda: s.train_x, spec, threads),
              cache.get(parent, k + "-test", lambda: s.test_x, spec, threads))
        qf = (cache.get(model, k + "-train", lambda: s.train_x, spec, threads),
              cache.get(model, k + "-test", lambda: s.test_x, spec, threads))
        a, b = pf[1], qf[1]
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        rel = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-12)
        f32 = ncm_accuracy(pf[0], s.train_y, pf[1], s.test_y)
        q = ncm_accuracy(qf[0], s.train_y, qf[1], s.test_y)
        out[s.name] = {"ncm_f32": round(f32, 2), "ncm_int8": round(q, 2), "delta": round(q - f32, 2),
                       "feature_cosine_mean": round(float(cos.mean()), 5),
                       "feature_rel_l2_mean": round(float(rel.mean()), 5),
                       "mean_images": int(len(s.train_y)), "scored_images": int(len(s.test_y))}
    return out


def feature_error(model: Path, parent_feats: np.ndarray, x: np.ndarray, threads: int) -> tuple[float, float]:
    """Mean relative L2 error and mean cosine of a candidate's features against the parent's."""
    b = run_features(session(model, threads), x)
    a = parent_feats
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(rel.mean()), float(cos.mean())


# ---------------------------------------------------------------------------------------------------
# Card


def reference_features(model: Path, spec: dict, output: str) -> list[list[float]]:
    c = 1 if spec["channel_order"] == "GRAY" else 3
    sess = session(model, 1)
    shape = (1, c, spec["height"], spec["width"])
    return [[float(v) for v in run_features(sess, reference_input(s, shape), output)[0]] for s in REFERENCE_SEEDS]


def write_card(out: Path, parent: Path, parent_card: dict, s: Settings, calib: list[ImageChoice],
               calib_spec: str, seed: int, check: dict | None, atol: float, command: str) -> Path:
    import onnx
    import onnxruntime

    card = {
        "format": parent_card["format"],
        "name": parent_card["name"] + "-int8",
        "onnx": out.name,
        "sha256": sha256_file(out),
        "input": parent_card["input"],
        "features": parent_card["features"],
        "logits": parent_card.get("logits"),
        "classes": parent_card.get("classes", []),
        "provenance": (
            f"Int8 quantization of {parent.name} (sha256 {sha256_file(parent)}) by edgecl's "
            f"models/quantize_backbone.py with onnxruntime {onnxruntime.__version__}'s static quantizer; "
            f"no weights changed other than by rounding. The parent's provenance: {parent_card.get('provenance', '')}"
        ),
        "recipe": {
            "command": command,
            "seed": seed,
            "note": "run from the repository root with the venv of `bash models/venv.sh`; the parent "
                    "must be the file with the sha256 below",
            "parent": {"onnx": parent.name, "sha256": sha256_file(parent), "name": parent_card["name"]},
            "quantization": {
                "tool": "onnxruntime.quantization.quantize_static",
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
                "pre_process": "onnxruntime.quantization.quant_pre_process(skip_symbolic_shape=True)"
                if s.preprocess else None,
                "float_groups_meaning": "groups of nodes left in float: stem (first conv), block.N (MBConv "
                                        "block N), head (1x1 head conv), pool (global average pool), fc",
            },
            "calibration": {
                "spec": calib_spec,
                "images": sum(len(c.indices) for c in calib),
                "preprocessing": "the card's input spec (as edgecl eval feeds the model)",
                "sets": [asdict(c) for c in calib],
                "disjoint_from": "every test split; Fashion-MNIST calibration images are also outside the "
                                 f"first {FASHION_EVAL_TRAIN_LIMIT} training images per class",
            },
            "packages": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
                         "numpy": np.__version__},
        },
        "accuracy": {},
        "reference": {
            "generator": "xorshift32",
            "seeds": list(REFERENCE_SEEDS),
            "atol": atol,
            "features": reference_features(out, parent_card["input"], parent_card["features"]["output"]),
            "computed_by": f"onnxruntime {onnxruntime.__version__} CPU, one thread, on the int8 model",
        },
    }
    if check is not None:
        card["accuracy"]["ncm_check"] = {
            "what": "this script's NCM check: L2-normalised features, class means from the check set's "
                    "training images, accuracy on its test images; f32 = the parent, same images",
            **check,
        }
    path = out.with_suffix(".json")
    old = json.loads(path.read_text()) if path.exists() else {}
    # Results recorded by `record-eval` stay valid while the file is the same one.
    if old.get("sha256") == card["sha256"] and "edgecl_eval" in old.get("accuracy", {}):
        card["accuracy"]["edgecl_eval"] = old["accuracy"]["edgecl_eval"]
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------
# Commands


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", type=Path, default=DEFAULT_PARENT, help="the f32 parent (its card beside it)")
    ap.add_argument("--data-dir", type=Path, default=None, help="default $EDGECL_DATA, else ../shared/data")
    ap.add_argument("--calib", default=DEFAULT_CALIB, help="calibration images, DATASET:COUNT,... (training splits)")
    ap.add_argument("--seed", type=int, default=0, help="draws the calibration images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None,
                    help="scratch folder (prepared graph, calibration cache, features); default "
                         "~/.cache/edgecl/quantize/<parent sha256 prefix>")


def _settings(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--format", choices=["qdq", "qoperator"], default="qdq")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--per-channel", dest="per_channel", action="store_true", default=True)
    g.add_argument("--per-tensor", dest="per_channel", action="store_false")
    ap.add_argument("--activation-type", choices=["uint8", "int8"], default="uint8")
    ap.add_argument("--calibrate", choices=["minmax", "entropy", "percentile"], default="minmax")
    ap.add_argument("--percentile", type=float, default=99.999)
    ap.add_argument("--reduce-range", action="store_true")
    ap.add_argument("--exclude", default="",
                    help="comma-separated node groups (stem, block.N, head, pool, fc) or node names left in float")


def _settings_from(a) -> Settings:
    return Settings(format=a.format, per_channel=a.per_channel, activation_type=a.activation_type,
                    calibrate=a.calibrate, percentile=a.percentile, reduce_range=a.reduce_range,
                    exclude=tuple(x for x in a.exclude.split(",") if x))


def _workdir(a) -> Path:
    w = a.work or Path(os.environ.get("EDGECL_CACHE", Path.home() / ".cache" / "edgecl")) / "quantize" / \
        sha256_file(a.model)[:16]
    d = w / f"calib-{a.calib.replace(':', '').replace(',', '_')}-seed{a.seed}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cmd_quantize(a) -> int:
    t0 = time.time()
    root = a.data_dir or default_data_root()
    parent_card = json.loads(a.model.with_suffix(".json").read_text())
    spec = parent_card["input"]
    work = _workdir(a)
    s = _settings_from(a)
    calib, choices = calibration_set(a.calib, a.seed, root, spec)
    print(f"calibration: {len(calib)} images ({a.calib}, seed {a.seed})", file=sys.stderr)
    prepared = prepare(a.model, work.parent)
    quantize(prepared, a.out, calib, s, spec["name"], work)
    import onnx

    onnx.checker.check_model(onnx.load(str(a.out)), full_check=True)
    check = None
    if not a.no_check:
        sets = check_sets(root, a.check_train, a.check_val, choices)
        check = measure(a.out, a.model, sets, spec, FeatureCache(work / "features"), a.threads,
                        f"check{a.check_train}x{a.check_val}")
        for name, r in check.items():
            print(f"{name}: NCM f32 {r['ncm_f32']:.2f} int8 {r['ncm_int8']:.2f} ({r['delta']:+.2f}), feature "
                  f"cosine {r['feature_cosine_mean']:.4f}, rel L2 {r['feature_rel_l2_mean']:.4f}", file=sys.stderr)
        check = {"images": sets[0].rule, **check}
    argv = sys.argv[1:] if a.argv is None else a.argv
    command = "python " + shlex.join([_rel(Path(__file__)), *argv])
    card = write_card(a.out, a.model, parent_card, s, choices, a.calib, a.seed, check, a.atol, command)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes, sha256 {sha256_file(a.out)}) and {card} "
          f"in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


SWEEP = [
    Settings(format="qdq", per_channel=True),
    Settings(format="qdq", per_channel=False),
    Settings(format="qoperator", per_channel=True),
    Settings(format="qoperator", per_channel=False),
    Settings(format="qdq", per_channel=True, reduce_range=True),
    Settings(format="qdq", per_channel=True, activation_type="int8"),
    Settings(format="qdq", per_channel=True, calibrate="entropy"),
    Settings(format="qdq", per_channel=True, calibrate="percentile"),
    Settings(format="qdq", per_channel=True, exclude=("stem",)),
    Settings(format="qdq", per_channel=True, exclude=("pool", "fc")),
    Settings(format="qdq", per_channel=True, exclude=("head", "pool", "fc")),
    Settings(format="qdq", per_channel=True, exclude=("stem", "head", "pool", "fc")),
]


def cmd_sweep(a) -> int:
    """Each setting of SWEEP (or --only i,j): quantize to a scratch file, then the NCM check and latency."""
    root = a.data_dir or default_data_root()
    parent_card = json.loads(a.model.with_suffix(".json").read_text())
    spec = parent_card["input"]
    work = _workdir(a)
    calib, choices = calibration_set(a.calib, a.seed, root, spec)
    prepared = prepare(a.model, work.parent)
    sets = check_sets(root, a.check_train, a.check_val, choices)
    cache = FeatureCache(work / "features")
    extra = [Settings(exclude=tuple(x.split("+"))) for x in a.extra_exclude]
    todo = [s for i, s in enumerate(SWEEP + extra) if a.only is None or i in a.only]
    rows = []
    x1 = preprocess(sets[0].test_x[:1], spec)
    for s in todo:
        out = work / "sweep" / (re.sub(r"[^A-Za-z0-9.+-]+", "_", s.label()) + ".onnx")
        out.parent.mkdir(exist_ok=True)
        t0 = time.time()
        if not out.exists():
            quantize(prepared, out, calib, s, spec["name"], work)
        tq = time.time() - t0
        r = measure(out, a.model, sets, spec, cache, a.threads, f"check{a.check_train}x{a.check_val}")
        lat = latency_ratio(out, a.model, x1, a.threads, rounds=a.latency_rounds)
        row = {"settings": s.label(), "bytes": out.stat().st_size, **{k: v for k, v in r.items()},
               "latency_int8_ms": lat[0], "latency_f32_ms": lat[1], "latency_ratio": lat[2],
               "quantize_s": round(tq, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(sweep_table(rows))
    return 0


def sweep_table(rows: list[dict]) -> str:
    head = ("| settings | size (MB) | CIFAR-10 NCM int8 (f32) | delta | Fashion-MNIST NCM int8 (f32) | delta | "
            "feature cosine C / F | int8 / f32 latency |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        c, f = r["cifar10"], r["fashion-mnist"]
        lines.append(
            f"| {r['settings']} | {r['bytes'] / 1e6:.1f} | {c['ncm_int8']:.2f} ({c['ncm_f32']:.2f}) | "
            f"{c['delta']:+.2f} | {f['ncm_int8']:.2f} ({f['ncm_f32']:.2f}) | {f['delta']:+.2f} | "
            f"{c['feature_cosine_mean']:.4f} / {f['feature_cosine_mean']:.4f} | "
            f"{r['latency_int8_ms']:.2f} / {r['latency_f32_ms']:.2f} ms = {r['latency_ratio']:.2f} |")
    return "\n".join(lines)


def latency_ratio(q: Path, f: Path, x: np.ndarray, threads: int, rounds: int = 5, iters: int = 20
                  ) -> tuple[float, float, float]:
    """Median ms per batch-1 run of each model, alternating within one process (benches/int8_latency.py
    is the documented benchmark; this is the sweep's quick look)."""
    if rounds <= 0:
        return (float("nan"),) * 3
    sq, sf = session(q, threads), session(f, threads)
    name = sq.get_inputs()[0].name
    for s in (sq, sf):
        for _ in range(3):
            s.run(["features"], {name: x})
    tq, tf = [], []
    for _ in range(rounds):
        for s, t in ((sq, tq), (sf, tf)):
            t0 = time.perf_counter()
            for _ in range(iters):
                s.run(["features"], {name: x})
            t.append((time.perf_counter() - t0) / iters * 1e3)
    mq, mf = float(np.median(tq)), float(np.median(tf))
    return round(mq, 3), round(mf, 3), round(mq / mf, 3)


def cmd_sensitivity(a) -> int:
    """Per group of nodes (stem, block.N, head, pool, fc): the feature error with only that group quantized
    (what the group costs) and with everything but that group quantized (what leaving it in float saves).
    Measured on held-out training images (not the calibration ones, never test images)."""
    import onnx

    root = a.data_dir or default_data_root()
    parent_card = json.loads(a.model.with_suffix(".json").read_text())
    spec = parent_card["input"]
    work = _workdir(a)
    calib, choices = calibration_set(a.calib, a.seed, root, spec)
    prepared = prepare(a.model, work.parent)
    xs = []
    for (name, n), ch in zip(parse_calib(a.calib), choices):
        imgs, _, _ = pick_train_images(name, a.val // 2, a.seed + 1, root, skip=set(ch.indices))
        xs.append(preprocess(imgs, spec))
    x = np.concatenate(xs)
    ref = run_features(session(a.model, a.threads), x)
    model = onnx.load(str(prepared))
    groups = sorted({node_group(n.name) for n in model.graph.node} - {"other"}, key=_group_order)
    base = Settings(format=a.format, per_channel=a.per_channel, calibrate=a.calibrate)
    d = work / "sensitivity"
    d.mkdir(exist_ok=True)

    def err(s: Settings, tag: str) -> tuple[float, float]:
        out = d / f"{tag}.onnx"
        if not out.exists():
            quantize(prepared, out, calib, s, spec["name"], work)
        return feature_error(out, ref, x, a.threads)

    full = err(base, "all")
    print(f"all quantized: rel L2 {full[0]:.4f}, cosine {full[1]:.5f} ({len(x)} held-out training images)")
    print("| group | nodes | rel L2, only this group int8 | rel L2, all but this group int8 | saved |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = []
    for g in groups:
        nodes = [n.name for n in model.graph.node if node_group(n.name) == g]
        others = tuple(x for x in groups if x != g) + ("other",)
        only = err(Settings(**{**asdict(base), "exclude": others}), f"only-{g}")
        but = err(Settings(**{**asdict(base), "exclude": (g,)}), f"but-{g}")
        rows.append({"group": g, "nodes": len(nodes), "only_rel_l2": only[0], "but_rel_l2": but[0]})
        print(f"| {g} | {len(nodes)} | {only[0]:.4f} | {but[0]:.4f} | {full[0] - but[0]:+.4f} |", flush=True)
    (d / "sensitivity.json").write_text(json.dumps({"all": full, "rows": rows}, indent=2))
    return 0


def cmd_record_eval(a) -> int:
    """Reads an f32 and an int8 `edgecl eval` report.json (same arguments) and stores the per-head final
    accuracy and average incremental accuracy, and their deltas, in the int8 card's accuracy.edgecl_eval."""
    f32, q = json.loads(a.f32.read_text()), json.loads(a.int8.read_text())
    card_path = a.card
    card = json.loads(card_path.read_text())
    if q.get("model_sha256") != card["sha256"]:
        raise SystemExit(f"{a.int8} was made with model {q.get('model_sha256')}, not {card_path}'s")
    if f32.get("model_sha256") != card["recipe"]["parent"]["sha256"]:
        raise SystemExit(f"{a.f32} was made with model {f32.get('model_sha256')}, not the card's parent")
    for k in ("dataset", "train_images", "test_images", "protocol", "memory_budget", "memory_storage"):
        if f32.get(k) != q.get(k):
            raise SystemExit(f"the two reports differ in {k}: {f32.get(k)!r} vs {q.get(k)!r}")
    rows = {}
    fh, qh = _heads(f32), _heads(q)
    for head, fv in fh.items():
        if head not in qh:
            continue
        qv = qh[head]
        rows[head] = {k: ({"f32": fv[k], "int8": qv[k]} if k.endswith("_std") else
                          {"f32": fv[k], "int8": qv[k], "delta": round(qv[k] - fv[k], 2)})
                      for k in fv if k in qv}
    card.setdefault("accuracy", {}).setdefault("edgecl_eval", {})[a.protocol] = {
        "f32_command": f32.get("command", ""), "int8_command": q.get("command", ""),
        "dataset": q.get("dataset"), "train_images": q.get("train_images"), "test_images": q.get("test_images"),
        "protocol": q.get("protocol"),
        "f32_report": _rel(a.f32), "int8_report": _rel(a.int8), "heads": rows,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    for head, r in rows.items():
        print(f"{a.protocol} {head}: " + ", ".join(f"{k} {v['f32']:.2f} -> {v['int8']:.2f} ({v['delta']:+.2f})"
                                                  for k, v in r.items() if "delta" in v))
    return 0


def _heads(report: dict) -> dict[str, dict[str, float]]:
    """head -> {final_accuracy, average_incremental, forgetting} in percent (means over seeds), plus the
    std over seeds, from an edgecl eval report.json."""
    out = {}
    for h in report["heads"]:
        row = {}
        for k in ("final_accuracy", "average_incremental", "forgetting"):
            if isinstance(h.get(k), dict):
                row[k] = round(100.0 * float(h[k]["mean"]), 2)
                row[k + "_std"] = round(100.0 * float(h[k]["std"]), 2)
        out[h["head"]] = row
    return out


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    q = sub.add_parser("quantize", help="write the int8 model and its card (the default command)")
    _common(q)
    _settings(q)
    q.add_argument("--out", type=Path, default=HERE / "efficientnet-lite0-int8.onnx")
    q.add_argument("--atol", type=float, default=0.25, help="the card's reference tolerance (see the docstring)")
    q.add_argument("--no-check", action="store_true", help="skip the NCM check against the parent")
    for p in [q]:
        p.add_argument("--check-train", type=int, default=100, help="NCM check: training images per class")
        p.add_argument("--check-val", type=int, default=50, help="NCM check: held-out training images per class")
    sw = sub.add_parser("sweep", help="compare the settings in SWEEP: NCM check, feature error, latency")
    _common(sw)
    sw.add_argument("--check-train", type=int, default=100)
    sw.add_argument("--check-val", type=int, default=50)
    sw.add_argument("--only", type=lambda s: [int(x) for x in s.split(",")], default=None)
    sw.add_argument("--extra-exclude", action="append", default=[],
                    help="also try QDQ per-channel with these groups in float, e.g. block.0+block.1 (repeatable)")
    sw.add_argument("--latency-rounds", type=int, default=5)
    se = sub.add_parser("sensitivity", help="feature error per node group (stem, block.N, head, pool, fc)")
    _common(se)
    _settings(se)
    se.add_argument("--val", type=int, default=256, help="held-out training images (half per dataset)")
    re_ = sub.add_parser("record-eval", help="store edgecl eval f32/int8 results in the int8 card")
    re_.add_argument("--protocol", required=True, help="a name, e.g. cifar10-all")
    re_.add_argument("--card", type=Path, default=HERE / "efficientnet-lite0-int8.json")
    re_.add_argument("f32", type=Path)
    re_.add_argument("int8", type=Path)
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in ("quantize", "sweep", "sensitivity", "record-eval", "-h", "--help"):
        args_list = ["quantize", *args_list]
    a = ap.parse_args(args_list)
    a.argv = None if argv is None else argv
    return {"quantize": cmd_quantize, "sweep": cmd_sweep, "sensitivity": cmd_sensitivity,
            "record-eval": cmd_record_eval}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
