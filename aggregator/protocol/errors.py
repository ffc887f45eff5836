"""The one error type that ends a command with a JSON error line."""

from __future__ import annotations


class AggregatorError(Exception):
    """A failure servo must hear about: `reason` is a short kind, `message` says what to do."""

    def __init__(self, reason: str, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status

    def as_result(self) -> dict[str, object]:
        return {"status": self.status, "reason": self.reason, "message": self.message}
