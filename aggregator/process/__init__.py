"""Layer: operating-system processes, knowing nothing of servo.

Forking on the main thread with a parent-death guard, pidfds, the sentinel that outlives
a SIGKILLed aggregator (with the run's cgroup and the process lineage it goes by), the
child subreaper and its orphan sweep, head starts, what a reaped driver used
(resources), and each driver's resource limits (call_limits; confine: a cgroup of its
own or rlimits). Imports only the standard library, trio (driver_process, orphans) and
aggregator.limits; the rest is trio-free (it runs before trio is imported, or in the
sentinel).
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("call_limits", "cgroup", "confine", "fork", "headstart",
                               "lineage", "linux", "resources", "sentinel")
