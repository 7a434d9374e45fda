"""Replication rules that need no I/O: what a receiving member accepts (pure)."""

from .stream import FrameVerdict, check_frame

__all__ = ["FrameVerdict", "check_frame"]
