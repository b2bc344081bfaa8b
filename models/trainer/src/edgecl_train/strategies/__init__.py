"""Continual-learning strategies, one file each. Add a method: write `strategies/NAME.py` with a
`Strategy` subclass and list it in `STRATEGIES`."""

from __future__ import annotations

from .base import Context, Strategy, StrategyConfig
from .er import ER
from .finetune import Finetune
from .joint import Joint
from .scr import SCR

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Finetune, Joint, ER, SCR)}

__all__ = ["Context", "STRATEGIES", "Strategy", "StrategyConfig"]
