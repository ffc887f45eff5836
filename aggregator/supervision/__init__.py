"""Layer: supervised driver calls and the Run that owns a command's whole life.

One supervised call (call.py), many at once (Supervisor.call_all), the line reader and
stderr capture, servo's stop signals (signals, control), servo's channel (output), the
progress relay, the live display for people, the Run (run.py, trio-free at import) with
its trio side (session.py), and the facts of a run kept for its record (facts.py; the
journal layer writes them). Knows processes, protocol and trio; nothing of adjust or
measure, nor of files or JSON for the record. Imports process, protocol and root.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("bounds", "facts", "final", "output", "run", "signals",
                               "spec", "stderr")
