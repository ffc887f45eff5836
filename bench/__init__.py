"""The benchmark (`python bench/run.py`); a package only so the smoke test can import it."""
