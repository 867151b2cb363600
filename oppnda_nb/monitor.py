"""Compatibility alias: the memory monitor lives in :mod:`oppnda_nb.pool.monitor`."""
from __future__ import annotations

from .pool.monitor import COLUMNS, MB, MemoryMonitor, MemorySample, ProcessMemory, ProcessMemoryReader, samples_frame

__all__ = ["COLUMNS", "MB", "MemoryMonitor", "MemorySample", "ProcessMemory", "ProcessMemoryReader", "samples_frame"]
