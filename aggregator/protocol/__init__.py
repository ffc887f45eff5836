"""Layer: servo's protocol as pure formats, no I/O.

Descriptors, requests, results, progress values, validation, servo's environment
variables, message text, and the vocabulary (statuses, reasons, call names). Imports
only the standard library and aggregator.limits; never trio, never yaml.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = (
    "descriptor", "environment", "errors", "progress", "request", "result", "strict_json",
    "text", "validation", "vocabulary",
)
