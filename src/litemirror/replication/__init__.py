"""Replication rules that need no I/O (pure): what a receiving member accepts, where a
joining member's stream starts."""

from .start import StartPlan, plan_start
from .stream import FrameVerdict, check_frame

__all__ = ["FrameVerdict", "StartPlan", "check_frame", "plan_start"]
