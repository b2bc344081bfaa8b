"""Joint training on all tasks at once (the upper bound). The run loop merges the tasks into one."""

from __future__ import annotations

from .finetune import Finetune


class Joint(Finetune):
    name = "joint"
    joint = True
