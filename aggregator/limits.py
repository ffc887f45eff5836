"""Every limit the aggregator enforces, named once so docs and code agree."""

#: A driver stdout line longer than this is a protocol error (the driver is killed).
MAX_LINE_BYTES = 1024 * 1024

#: Capacity of each driver's stdout pipe. A driver can run at most this far ahead of
#: what servo has been told: a flooding driver blocks instead of queueing ~64 KiB
#: (a thousand progress lines) between its write and servo's view of it.
DRIVER_STDOUT_PIPE_BYTES = 4096

#: How much is asked of a pipe per read.
READ_CHUNK_BYTES = 64 * 1024

#: Stderr kept per driver call: this much from the start and this much from the end.
STDERR_HEAD_BYTES = 64 * 1024
STDERR_TAIL_BYTES = 64 * 1024

#: servo cuts result messages at 2 MiB; so does the aggregator.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

#: Default seconds between SIGTERM and SIGKILL to a driver's process group.
DEFAULT_KILL_GRACE = 0.5

#: Default seconds a driver gets after SIGUSR1 to print its own result.
DEFAULT_CANCEL_GRACE = 3.0

#: Once a driver exited and what it wrote is read, its pipes are read on only while data
#: comes at least this often: a grandchild holding them open is not waited for.
EXIT_DRAIN_SECONDS = 0.25

#: ... and never longer than this in all (nor than the line limit) after the exit.
EXIT_DRAIN_MAX_SECONDS = 1.0

#: Upper bound on waiting for a SIGKILLed process to be reaped (a process in D state).
REAP_LIMIT_SECONDS = 5.0

#: Identical consecutive progress lines within this window are sent once.
PROGRESS_COALESCE_SECONDS = 1.0

#: Safety margin kept between the aggregator's own silence and servo's timeout.
KEEPALIVE_MARGIN_SECONDS = 0.25

#: A one-line answer (--version), which no keep-alive can precede, is written at the
#: latest this long before servo's timeout; drivers not done by then are reported failing.
ANSWER_MARGIN_SECONDS = 0.5

#: Without OPTUNE_IO_TIMEOUT, a one-line answer (--version) is still out within this: the
#: drivers not done by then are killed and shown as failing.
UNTIMED_ANSWER_LIMIT_SECONDS = 30.0

#: Rounds of killing re-parented orphans before giving up (each round kills one generation).
ORPHAN_SWEEP_ROUNDS = 64

#: `--check` run without OPTUNE_IO_TIMEOUT still bounds each driver call as if it were set
#: to this, so a stuck driver cannot hang the check.
CHECK_IO_TIMEOUT_SECONDS = 30.0
