import os
import sys
from pathlib import Path

# The tests import this clone's source even when the venv's editable install points elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
