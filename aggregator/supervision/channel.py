"""servo's end of stdout, under trio: the writer that drains Output's queue without ever
holding up the thread that supervises drivers, and the watch that stops the run once
servo is gone.

The writer writes one whole line at a time, in order, waiting on trio's wait_writable
while stdout is full; a servo that does not read holds up no timeout, kill cascade or
signal. At the end, flush() waits for what is left at most FINAL_WRITE_SECONDS (shared
with Output's plain writes). When servo's end of the pipe is closed (EPIPE, or the
kernel's POLLERR on our end, noticed even while every driver is silent), when stdout
fails, or when servo itself exits (a pidfd on our parent at start), the run stops as on
SIGTERM: the running driver is terminated, no further one starts.
"""

from __future__ import annotations

import os
import select
import signal

import trio

from aggregator.limits import FINAL_WRITE_SECONDS
from aggregator.supervision.control import RunControl
from aggregator.supervision.output import Output, stdout_failure

#: What a stop because servo went away is reported as, besides its cause: its pipe's end
#: closed (exit 141), or servo itself gone (exit 129: the hangup of a controlling process).
PIPE_GONE_SIGNAL = signal.SIGPIPE
SERVO_GONE_SIGNAL = signal.SIGHUP


class ServoChannel:
    """The trio side of one run's Output: its writer task, and the watches on servo."""

    def __init__(self, output: Output, control: RunControl) -> None:
        self._output = output
        self._control = control
        self._lot = trio.lowlevel.ParkingLot()
        self._idle = trio.Event()  # set while nothing is queued or being written

    def _wake(self) -> None:
        if self._idle.is_set():
            self._idle = trio.Event()
        self._lot.unpark_all()

    def _gone(self, why: str) -> None:
        """servo can no longer be told anything: stop writing, stop the run."""
        self._output.lose(why)
        self._control.terminate(PIPE_GONE_SIGNAL, why)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Runs until cancelled (with the run); lines are queued from when it started."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_hangup)
            nursery.start_soon(self._watch_servo)
            self._output.attach(self._wake, self._gone)
            task_status.started()
            await self._write_lines()

    async def _write_lines(self) -> None:
        output = self._output
        fd = output.fd
        view = memoryview(b"")
        try:
            while True:
                if not view or output.closed:
                    data = output.take()
                    if data is None:
                        self._idle.set()
                        await self._lot.park()
                        continue
                    view = memoryview(data)
                    output.line_begins()
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(fd)
                    continue
                except InterruptedError:
                    continue
                except OSError as exc:
                    view = memoryview(b"")
                    output.fail(stdout_failure(exc))
                if not view:
                    output.line_ends()
        finally:
            output.detach(view if not output.closed else None)

    async def _watch_hangup(self) -> None:
        """Wakes when the reading end of stdout is gone (the kernel reports POLLERR, or
        POLLHUP for a terminal, on ours), however long we have had nothing to write.

        An epoll set with stdout registered for no event reports just those two, and the
        set itself is readable while it has something to report: trio waits on that.
        """
        with select.epoll() as watch:
            try:
                watch.register(self._output.fd, 0)
            except OSError:  # a regular file or /dev/null: no reader to lose
                return
            await trio.lowlevel.wait_readable(watch.fileno())
        if not self._output.closed:
            self._gone("servo's end of stdout was closed")

    async def _watch_servo(self) -> None:
        """Wakes when servo itself exits (on SIGTERM it exits at once without a word to
        its driver), however long every driver is silent; stdout may still be read by
        someone, so it is written on."""
        servo = self._output.servo
        if servo is None:
            return
        if not servo.gone:
            assert servo.pidfd is not None
            await trio.lowlevel.wait_readable(servo.pidfd)
        self._control.terminate(SERVO_GONE_SIGNAL, f"servo (pid {servo.pid}) exited")

    async def flush(self) -> None:
        """Wait until everything queued is written, within what is left of
        FINAL_WRITE_SECONDS; then what is left is dropped (and said on stderr)."""
        output = self._output
        started = trio.current_time()
        with trio.move_on_after(max(0.0, output.patience_left)):
            while not (self._idle.is_set() or output.closed):
                await self._idle.wait()
        output.patience_left -= trio.current_time() - started
        if not (self._idle.is_set() or output.closed):  # the line being written is lost too
            output.lose("servo did not read the last lines of stdout in time "
                        f"({FINAL_WRITE_SECONDS:g} s)", dropped=1)
