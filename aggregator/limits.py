"""Every limit the aggregator enforces, named once so docs and code agree."""

#: A driver stdout line longer than this is a protocol error (the driver is killed), unless
#: its call answers with data servo keeps (MAX_RESULT_LINE_BYTES). Progress lines, --info
#: answers and adjust results stay within this whatever the call.
MAX_LINE_BYTES = 1024 * 1024

#: The longest line from a driver whose call answers with data servo keeps: a --query
#: descriptor, a measure driver's --describe or its measurement (tens of MB are real, and
#: servo takes them). Reading one costs twice its size besides the value parsed from it
#: (buffer and line, then text and value; docs/supervision.md has what a value costs); a
#: progress line this long is still refused (bad-output).
MAX_RESULT_LINE_BYTES = 64 * 1024 * 1024

#: Capacity of each driver's stdout pipe. A driver can run at most this far ahead of
#: what servo has been told: a flooding driver blocks instead of queueing ~64 KiB
#: (a thousand progress lines) between its write and servo's view of it.
DRIVER_STDOUT_PIPE_BYTES = 4096

#: How much is asked of a pipe per read.
READ_CHUNK_BYTES = 64 * 1024

#: Descriptors a started driver holds in the aggregator: its stdin, stdout and stderr pipe
#: ends and a pidfd (a fork holds five more for a moment: the child's ends, the exec pipe).
FDS_PER_DRIVER = 4

#: Descriptors kept free of drivers, below the soft RLIMIT_NOFILE (`ulimit -n`): for trio
#: (epoll, its wake-up socket pair), the imports and files read during a run, the pidfds
#: of an orphan sweep and the fork under way. Drivers take only what is left: measure
#: drivers and parallel queries must all fit or are refused before any starts; --version's
#: --info calls take turns (150 drivers under `ulimit -n 256`: about 50 at a time).
FD_MARGIN = 32

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

#: Progress is relayed to servo at most once per this many seconds (config.yaml:
#: `progress_interval`), the newest state at the end of each interval: servo makes one
#: synchronous request to the optimizer per progress line, so a driver printing 10,000
#: lines must not cost it 10,000 requests. Never more than half the per-line limit.
DEFAULT_PROGRESS_INTERVAL_SECONDS = 0.25

#: `progress_interval` may be 0 (every line relayed) to 60 s: beyond a minute the
#: optimizer would see a run that is moving as one that is stuck.
MAX_PROGRESS_INTERVAL_SECONDS = 60.0

#: The heartbeat waits this long after a driver's first unrelayed sign of life (its
#: answer, often, which is passed on anyway); at most a quarter of its interval.
HEARTBEAT_SETTLE_SECONDS = 0.25

#: Safety margin kept between the aggregator's own silence and servo's timeout.
KEEPALIVE_MARGIN_SECONDS = 0.25

#: At the end of a run, servo-agg waits at most this long in all for servo to read what
#: is still waiting to be written (the final line; --check's report), then drops it and
#: exits: a servo that never reads cannot hold it longer. While the run goes on, a servo
#: that does not read holds up nothing (lines wait in a queue; newer progress replaces
#: older), so this is the only wait servo's end of stdout can cost.
FINAL_WRITE_SECONDS = 10.0

#: A one-line answer (--version), which no keep-alive can precede, is written at the
#: latest this long before servo's timeout; drivers not done by then are reported failing.
ANSWER_MARGIN_SECONDS = 0.5

#: Without OPTUNE_IO_TIMEOUT, a one-line answer (--version) is still out within this: the
#: drivers not done by then are killed and shown as failing.
UNTIMED_ANSWER_LIMIT_SECONDS = 30.0

#: Real measure drivers print nothing for up to this long (the common driver base
#: class's progress timer; a Prometheus reader sleeps through its window): `measure
#: --check` warns when OPTUNE_IO_TIMEOUT is below it.
MEASURE_SILENCE_SECONDS = 30.0

#: Rounds of killing re-parented orphans before giving up (each round kills one generation).
ORPHAN_SWEEP_ROUNDS = 64

#: `--check` run without OPTUNE_IO_TIMEOUT still bounds each driver call as if it were set
#: to this, so a stuck driver cannot hang the check.
CHECK_IO_TIMEOUT_SECONDS = 30.0

#: User data (a value, a key, a status, a file's first line) quoted in a message is cut to
#: this many characters: a hostile input must not make the message about it huge.
MAX_SHOWN_CHARS = 200

#: config.yaml is read only when it is a regular file of at most this size (1 MiB, far
#: above any real servo config): every command, --info included, may have to read it.
MAX_CONFIG_BYTES = 1024 * 1024

#: How many more nodes config.yaml may have with every YAML alias expanded than it has as
#: written. Anchors and aliases for shared blocks stay far below this; an alias bomb (430
#: bytes standing for ~400 million nodes) is refused before anything is built from it.
MAX_CONFIG_ALIAS_NODES = 10_000

#: --info (servo calls it before every command, with no timeout of its own) parses
#: config.yaml only up to this size (~0.1 s); a larger one that could move or disable
#: drivers makes --info say "drivers unknown". The commands read up to MAX_CONFIG_BYTES.
MAX_INFO_CONFIG_BYTES = 64 * 1024

#: `kill_grace` and `cancel_grace` (config.yaml) may be 0..60 s. Each is how long a driver
#: is waited for (after SIGTERM, after SIGUSR1) while servo or its operator is stopping
#: us: a minute is more than any clean shutdown needs, and a typo such as 1e9 must not
#: turn a stop into a wait without end for a driver that ignores the signal.
MAX_GRACE_SECONDS = 60.0

#: A driver's progress `weight` (config.yaml) is > 0 and at most this. Weights are
#: relative shares: at a million to one the small share is far below one percent point,
#: and weight x 100 summed over the drivers stays far from float overflow (1e308 did not).
MAX_WEIGHT = 1e6

#: measure's overall limit: at most this long past the window its control implies.
MAX_WINDOW_GRACE_SECONDS = 86400.0

#: OPTUNE_IO_TIMEOUT may be 0..7 days. It bounds the wait for one line from a driver; a
#: week is beyond any real servo setting and far below where timers give out (poll and
#: epoll take milliseconds as a 32-bit int: ~24.8 days; Python's select overflows at
#: ~292 years, which 1e10 s exceeds).
MAX_IO_TIMEOUT_SECONDS = 7 * 86400.0

#: An adjust request on stdin is read up to this size (16 MiB) and refused beyond it,
#: without reading the rest: a real request is a few KiB, and parsing costs ~4x its size.
MAX_REQUEST_BYTES = 16 * 1024 * 1024

#: `limits.memory` (config.yaml) may be 1 MiB to 1 TiB: below a mebibyte no interpreter
#: starts; beyond a tebibyte the limit would bound nothing on a host servo runs on.
MIN_MEMORY_LIMIT_BYTES = 1 << 20
MAX_MEMORY_LIMIT_BYTES = 1 << 40

#: `limits.pids` may be 1 to 4194304, the kernel's highest pid_max.
MAX_PIDS_LIMIT = 4_194_304

#: `limits.cpu` may be 0.01 to 1024 CPUs: cpu.max takes a quota of at least 1 ms per
#: period (CPU_PERIOD_MICROSECONDS, 100 ms), and a host has no more CPUs than this.
MIN_CPU_LIMIT = 0.01
MAX_CPU_LIMIT = 1024.0
CPU_PERIOD_MICROSECONDS = 100_000

#: `deadline` (config.yaml): a driver call may be given up to 7 days in all, as
#: OPTUNE_IO_TIMEOUT may; a measurement of hours fits, a typo such as 1e12 does not.
MAX_DEADLINE_SECONDS = 7 * 86400.0
#: The journal (`.servo-agg/journal.jsonl`, config.yaml `journal.max_bytes`): all its
#: files together stay under this by default (16 MiB: thousands of ordinary runs) ...
DEFAULT_JOURNAL_MAX_BYTES = 16 * 1024 * 1024
#: ... and the bound may be set from 64 KiB (a few runs with failing drivers' stderr)
#: to 1 GiB (a journal is read whole by `--history`).
MIN_JOURNAL_MAX_BYTES = 64 * 1024
MAX_JOURNAL_MAX_BYTES = 1024 * 1024 * 1024

#: The journal's files: journal.jsonl and journal.jsonl.1 .. .3, each at most a quarter
#: of the bound, so rotating drops the oldest quarter, and one record is at most that.
JOURNAL_FILES = 4

#: What a record keeps of one driver call, at most (cut further when a record is too
#: large for the journal's bound): the tail of its stderr, kept on success too ...
JOURNAL_STDERR_TAIL_BYTES = 4096
#: ... its result line, its first and its last progress line ...
JOURNAL_RESULT_BYTES = 2048
JOURNAL_PROGRESS_BYTES = 512
#: ... and of the run: the request on stdin, the final line servo got, and what was said
#: on stderr for people (this many notes, each cut to JOURNAL_NOTE_CHARS).
JOURNAL_REQUEST_BYTES = 4096
JOURNAL_FINAL_BYTES = 4096
JOURNAL_NOTES = 32
JOURNAL_NOTE_CHARS = 1000
#: ... and of every name, word or value it takes from a driver or the command line (the
#: app id, an argument, a driver's name, a reason, a setting and the value a rollback
#: restores), this many characters, and of each list of them (arguments, argv, the
#: settings of a rollback step) this many items; cut further, never below the floors,
#: when the record is too large (what the record needs to say which run and driver).
JOURNAL_NAME_CHARS = 256
JOURNAL_NAME_FLOOR_CHARS = 64
JOURNAL_ITEMS = 256
JOURNAL_ITEMS_FLOOR = 4

#: A path config.yaml names (journal.dir, metrics_file) must be one Linux can open: at
#: most PATH_MAX less its NUL, each component at most NAME_MAX bytes.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255

#: Writing a record waits at most this long for another aggregator's lock on the journal
#: (each holds it for a write of one record): a stuck holder costs one note, not a hang.
JOURNAL_LOCK_SECONDS = 2.0
