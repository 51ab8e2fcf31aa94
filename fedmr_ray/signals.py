"""Stopping a run from outside: SIGTERM, how Kubernetes stops a pod and `ray job stop` a job, stops
it as Ctrl-C does: the round in flight finishes where it can, a checkpoint is written, and the
command exits 143 (130 for Ctrl-C) with the command to go on."""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises Terminated in the main thread (the command line's choice: a
    library user's process keeps its own handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def keep_sigterm():
    """A context in which something that installs its own SIGTERM handler (ray.init does) leaves
    ours in place, where ours was installed."""
    return _Kept()


class _Kept:
    def __enter__(self) -> None:
        self.ours = signal.getsignal(signal.SIGTERM) is _terminate

    def __exit__(self, *exc) -> None:
        if self.ours:
            stop_on_sigterm()
