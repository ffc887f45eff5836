"""Text as servo receives it: messages cut where servo would cut them. Pure."""

from __future__ import annotations

from aggregator.limits import MAX_MESSAGE_BYTES


def clip_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Cut a message as servo does, on a character boundary."""
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = "\n[... cut at 2 MiB ...]"
    return encoded[: limit - len(marker)].decode("utf-8", "ignore") + marker
