"""Layer: supervised driver calls and the Run that owns a command's whole life.

One supervised call (call.py), many at once (Supervisor.call_all), the line reader and
stderr capture, servo's stop signals (signals, control), servo's channel (output), the
progress relay, the live display for people, and the Run (run.py, trio-free at import)
with its trio side (session.py). Knows processes, protocol and trio; nothing of adjust
or measure. Imports process, protocol and root.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("bounds", "final", "output", "run", "signals", "spec",
                               "stderr")
