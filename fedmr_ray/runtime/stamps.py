"""Start-up stamps: when this process started, on the wall clock (time.time()), so that the
coordinator and the executors can say when each step of their start ended (benchmarks/startup.py)."""

from __future__ import annotations

import os
import time


def process_started() -> float:
    """This process's start on the wall clock, from Linux's /proc (to 10 ms); now where there is none."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime: ticks after boot
            age = float(uptime.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError):
        return time.time()
