"""Stopping a run from outside: SIGTERM, how Kubernetes stops a pod and `ray job stop` a job, stops
it as Ctrl-C does: the round in flight finishes where it can, a checkpoint is written, and the
command exits 143 (130 for Ctrl-C) with the command to go on."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


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


@contextlib.contextmanager
def restored(*signals: signal.Signals) -> Iterator[None]:
    """These signals' handlers put back as they were once the body is done, whatever it installs
    (Ray Tune's fit leaves a SIGINT handler of its own behind, after which Ctrl-C no longer
    raises KeyboardInterrupt). In the main thread only: no other may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:  # None: installed from outside Python, cannot be put back
                signal.signal(sig, handler)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back while the body runs (a round's metrics and its checkpoint are
    written whole), then delivered as they would have been. In the main thread only: signals
    reach no other."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    with restored(signal.SIGINT, signal.SIGTERM):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    if caught:
        signal.raise_signal(caught[0])  # to the handler it would have reached
