"""The DDP code path, run as 2 CPU processes with the gloo backend (no GPU here: NCCL itself is untested)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from test_end_to_end import check_card, write_cifar

SRC = Path(__file__).resolve().parents[1] / "src"


def test_torchrun_two_cpu_processes_scr(tmp_path):
    # SCR covers the DDP specifics: two views in one forward, the review pass with a common step count.
    write_cifar(tmp_path / "cifar")
    env = dict(os.environ, EDGECL_DDP_BACKEND="gloo", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    for strategy in ("scr",):
        out = tmp_path / f"{strategy}.onnx"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "edgecl_train", "run", "--strategy", strategy, "--data-dir", str(tmp_path / "cifar"),
               "--tasks", "2", "--memory", "16", "--mem-batch", "8", "--batch-size", "4", "--quiet",
               "--report-dir", str(tmp_path / strategy), "--out", str(out)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        m = json.loads((tmp_path / strategy / "metrics.json").read_text())
        assert len(m["accuracy_matrix"]) == 2
        check_card(out, 160, None)
