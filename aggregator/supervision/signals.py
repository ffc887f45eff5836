"""servo's signals before trio's receiver is listening (while the request is read).

No driver runs yet, so a SIGTERM/SIGINT simply ends the run (as `terminated`), and a
SIGUSR1 is remembered and applied as soon as the run starts: no driver will start.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # control imports trio; this module runs before trio is imported
    from aggregator.supervision.control import RunControl

#: servo's signals: SIGUSR1 cancels, SIGTERM and SIGINT terminate.
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


class StoppedEarly(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class EarlySignals:
    """Records stop signals that arrive before the run's own signal receiver."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._raise_on_stop = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
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

    @contextmanager
    def interrupting(self) -> Iterator[None]:
        """Within this block a SIGTERM/SIGINT raises StoppedEarly (e.g. out of a read)."""
        self._raise_on_stop = True
        try:
            yield
        finally:
            self._raise_on_stop = False

    def apply(self, control: RunControl) -> None:
        for signum in self.received:
            if signum == signal.SIGUSR1:
                control.cancel()
            else:
                control.terminate(signum)
