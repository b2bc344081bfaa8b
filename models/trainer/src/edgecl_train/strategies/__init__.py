"""Continual-learning strategies, one file each. Add a method: write `strategies/NAME.py` with a
`Strategy` subclass (and its `Options`) and list it in `STRATEGIES`."""

from __future__ import annotations

from .agem import AGEM
from .base import Context, Options, ReplayOptions, Strategy, TaskData
from .er import ER
from .ewc import EWC, OnlineEWC
from .finetune import Finetune
from .gdumb import GDumb
from .gem import GEM
from .icarl import ICaRL
from .joint import Joint
from .lwf import LwF, LwFMC
from .mir import MIR
from .scr import SCR

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (Finetune, Joint, ER, SCR, AGEM, GEM, EWC, OnlineEWC, LwF, LwFMC, ICaRL, MIR, GDumb)
}

__all__ = ["Context", "Options", "ReplayOptions", "STRATEGIES", "Strategy", "TaskData"]
