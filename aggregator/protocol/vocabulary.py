"""servo's words, and the aggregator's own: statuses, reasons and call names, named once.

StrEnum members are the strings themselves: they compare equal to what a driver printed
and serialize as plain JSON strings.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A final line's `status`, as servo knows them (`nodata` is servo's own)."""

    OK = "ok"
    FAILED = "failed"
    REJECTED = "rejected"
    ABORTED = "aborted"
    CANCELED = "canceled"


#: The statuses a driver may report and servo understands.
SERVO_STATUSES = frozenset(Status)


class Reason(StrEnum):
    """A final line's `reason` when the aggregator, not a driver, decides it."""

    SUCCESS = "success"
    # what supervision found
    TIMEOUT = "timeout"
    BAD_OUTPUT = "bad-output"
    SPAWN_FAILED = "spawn-failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    KILLED_BY_SIGNAL = "killed-by-signal"
    DRIVER_FAILED = "driver-failed"
    NO_RESULT = "no-result"
    BAD_STATUS = "bad-status"  # a status servo does not know
    OUT_OF_MEMORY = "out-of-memory"  # stopped by its memory limit (`limits.memory`)
    # what the aggregator refused before running anything
    BAD_USAGE = "bad-usage"
    BAD_STDIO = "bad-stdio"  # stdout closed at start: nothing could reach servo
    BAD_INPUT = "bad-input"
    BAD_ENV = "bad-env"
    BAD_CONFIG = "bad-config"
    NO_DRIVERS_DIR = "no-drivers-dir"
    DUPLICATE_SETTING = "duplicate-setting"
    UNKNOWN_SETTINGS = "unknown-settings"
    QUERY_FAILED = "query-failed"
    ROLLBACK_FAILED = "rollback-failed"
    TOO_MANY_DRIVERS = "too-many-drivers"  # more at once than descriptors allow
    # measure
    DUPLICATE_METRIC = "duplicate-metric"
    DESCRIBE_FAILED = "describe-failed"
    NO_METRICS = "no-metrics"
    MISSING_METRICS = "missing-metrics"  # a driver's result lacks what it describes
    SIBLING_FAILED = "sibling-failed"  # canceled because another measure driver failed


class Call(StrEnum):
    """Which driver call: what servo would call it, and what messages name it by."""

    INFO = "info"
    QUERY = "query"
    ADJUST = "adjust"
    ROLLBACK = "rollback"
    DESCRIBE = "describe"
    MEASURE = "measure"
