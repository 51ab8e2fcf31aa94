"""Memory of a process tree (this process and every process it started: with a local Ray, the
driver, the coordinator, the executors and Ray's own daemons), read from /proc.

PSS (proportional set size) counts a page shared by n processes as 1/n in each, so that the
object store's shared memory, mapped by every Ray process, is counted once in the sum.
"""

from __future__ import annotations

import os
import threading
import time


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(root: int | None = None) -> float:
    """PSS of `root` (default: this process) and all its descendants, in MB."""
    tree, stack, total = _children(), [root or os.getpid()], 0
    while stack:
        pid = stack.pop()
        total += _pss_kb(pid)
        stack.extend(tree.get(pid, []))
    return total / 1024


class PeakSampler:
    """Samples tree_pss_mb every `period` seconds in a thread; `peak` is the largest seen."""

    def __init__(self, period: float = 0.5, root: int | None = None):
        self.period, self.root, self.peak = period, root, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_mb(self.root))
            time.sleep(self.period)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss_mb(self.root))
