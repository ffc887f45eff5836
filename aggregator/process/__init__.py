"""Layer: operating-system processes, knowing nothing of servo.

Forking on the main thread with a parent-death guard, pidfds, the sentinel that outlives
a SIGKILLed aggregator, the child subreaper and its orphan sweep, and head starts.
Imports only the standard library, trio (driver_process, orphans) and aggregator.limits;
fork, headstart, linux and sentinel are trio-free (they run before trio is imported).
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("fork", "headstart", "linux", "sentinel")
