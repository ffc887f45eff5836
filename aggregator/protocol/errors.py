"""The one error type that ends a command with a JSON error line."""

from __future__ import annotations

#: Why a run whose stdout was closed at start is refused (reason bad-stdio): said on
#: stderr, kept in its record.
STDOUT_CLOSED = "stdout was closed at start, so nothing could reach servo; nothing was run"


class AggregatorError(Exception):
    """A failure servo must hear about: `reason` is a short kind, `message` says what to do."""

    def __init__(self, reason: str, message: str, status: str = "failed",
                 failed_drivers: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        #: the drivers whose failure ended the command (named in servo's failed_drivers)
        self.failed_drivers = failed_drivers

    def as_result(self) -> dict[str, object]:
        result: dict[str, object] = {"status": self.status, "reason": self.reason,
                                     "message": self.message}
        if self.failed_drivers:
            result["failed_drivers"] = list(self.failed_drivers)
        return result
