"""Continual-learning strategies, one file each. Add a method: write `strategies/NAME.py` with a
`Strategy` subclass (and its `Options`) and list it in `STRATEGIES`."""

from __future__ import annotations

from .abd import ABD
from .agem import AGEM
from .agscl import AGSCL
from .base import Context, Options, ReplayOptions, Strategy, TaskData
from .er import ER
from .ewc import EWC, OnlineEWC
from .finetune import Finetune
from .gdumb import GDumb
from .cpg import CPG
from .deepinversion import DeepInversion
from .den import DEN
from .der import DER
from .gem import GEM
from .icarl import ICaRL
from .joint import Joint
from .lvt import LVT
from .lwf import LwF, LwFMC
from .mir import MIR
from .piggyback import Piggyback
from .pnn import PNN
from .scr import SCR
from .vcl import VCL

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (Finetune, Joint, ER, SCR, AGEM, GEM, EWC, OnlineEWC, LwF, LwFMC, ICaRL, MIR, GDumb,
                PNN, DEN, Piggyback, CPG, VCL, AGSCL, LVT, DER, ABD, DeepInversion)
}

__all__ = ["Context", "Options", "ReplayOptions", "STRATEGIES", "Strategy", "TaskData"]
