"""Layer: the journal, a record of every run (docs/journal.md), and what reads it.

`record` turns what a run did (supervision/facts.py) into one versioned JSON record and
cuts it to fit the journal's bound (pure); `store` writes records, one write each under
a lock, rotating the files within the bound, and finds them again; `reader` reads them
back, past any record cut short; `show` puts them in words for people; `metrics` keeps
the Prometheus text file. The entry points write a record once servo has its final line
and answer the readers (`--last`, `--show`, `--history`) before trio is loaded. Imports
supervision's plain facts and the layers below; all of it is trio-free, and
prometheus_client is imported only when a metrics file is configured.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("metrics", "reader", "record", "show", "store")
