"""servo's signals and what each one asks for: the one dispatch from signal to action.

Trio-free: handlers are installed as soon as the aggregator starts, long before trio's
receiver listens. Until then a SIGTERM/SIGINT during the request read ends the run (no
driver runs yet), and every signal is remembered and replayed into the run's control
once it starts, so a SIGUSR1 that came early still means no driver starts.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from aggregator.protocol.text import signal_name

#: servo's signals: SIGUSR1 cancels; SIGTERM, SIGINT and SIGHUP (a closed terminal or
#: session) terminate.
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stoppable(Protocol):
    """What a signal acts on: the run's control."""

    def cancel(self) -> None: ...
    def terminate(self, signum: int) -> None: ...


def deliver(signum: int, target: Stoppable) -> None:
    """The one place that says what each of servo's signals means."""
    if signum == signal.SIGUSR1:
        target.cancel()
    else:
        target.terminate(signum)


class StoppedEarly(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


class EarlySignals:
    """Records stop signals that arrive before the run's own signal receiver (and tells
    each to `record`, the run's record, as it comes)."""

    def __init__(self, record: Callable[[int], None] | None = None) -> None:
        self.received: list[int] = []
        self._record = record
        self._raise_on_stop = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._record is not None:
            self._record(signum)
        if self._raise_on_stop and signum != signal.SIGUSR1:
            raise StoppedEarly(signum)

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handler)

    @staticmethod
    def uninstall() -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT
                          else signal.default_int_handler)

    @staticmethod
    def let_stops_end_the_process() -> None:
        """Once servo has the final line: SIGTERM, SIGINT and SIGHUP end the process at
        once (the default action), since nothing is left that a stop must wait for; a
        late SIGUSR1 is still only noted (nothing is left to cancel, and dying of it would
        change the exit status servo sees)."""
        for sig in STOP_SIGNALS:
            if sig != signal.SIGUSR1:
                signal.signal(sig, signal.SIG_DFL)

    @contextmanager
    def interrupting(self) -> Iterator[None]:
        """Within this block a SIGTERM/SIGINT raises StoppedEarly (e.g. out of a read)."""
        self._raise_on_stop = True
        try:
            yield
        finally:
            self._raise_on_stop = False

    def replay(self, target: Stoppable) -> None:
        for signum in self.received:
            deliver(signum, target)
