"""config.yaml's `journal:` and `metrics_file` keys: their defaults, their ranges, and
each wrong value named."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.limits import DEFAULT_JOURNAL_MAX_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import AggregatorConfig, JournalConfig, parse_section

pytestmark = pytest.mark.unit


def test_by_default_every_run_is_recorded_in_the_servo_root_and_no_metrics_file() -> None:
    config = AggregatorConfig()
    assert config.journal == JournalConfig(".servo-agg", DEFAULT_JOURNAL_MAX_BYTES, True)
    assert DEFAULT_JOURNAL_MAX_BYTES == 16 * 2**20
    assert config.metrics_file is None


def test_every_key() -> None:
    config = parse_section({"journal": {"dir": "state/runs", "max_bytes": 65536,
                                        "enabled": False},
                            "metrics_file": "/var/lib/node_exporter/servo_agg.prom"})
    assert config.journal == JournalConfig("state/runs", 65536, False)
    assert config.metrics_file == "/var/lib/node_exporter/servo_agg.prom"
    assert parse_section({"journal": {"max_bytes": 2**30}}).journal.max_bytes == 2**30
    assert parse_section({"journal": None}).journal == JournalConfig()


@pytest.mark.parametrize(("section", "names", "says"), [
    ({"journal": "on"}, "aggregator.journal", "must be a mapping"),
    ({"journal": {"size": 1}}, "aggregator.journal.size", "unknown key (known: dir, "),
    ({"journal": {"dir": ""}}, "aggregator.journal.dir", "non-empty path"),
    ({"journal": {"dir": 5}}, "aggregator.journal.dir", "non-empty path"),
    ({"journal": {"dir": "/var/log/x"}}, "aggregator.journal.dir", "inside the servo root"),
    ({"journal": {"dir": "../elsewhere"}}, "aggregator.journal.dir", "inside the servo root"),
    ({"journal": {"dir": "a/../.."}}, "aggregator.journal.dir", "inside the servo root"),
    ({"journal": {"dir": "."}}, "aggregator.journal.dir", "inside the servo root"),
    ({"journal": {"dir": "adjust.d/log"}}, "aggregator.journal.dir",
     "in the drivers directory 'adjust.d'"),
    ({"journal": {"dir": "adjust.d"}}, "aggregator.journal.dir", "drivers directory"),
    ({"drivers_dir": "drv", "journal": {"dir": "./drv/j"}}, "aggregator.journal.dir",
     "drivers directory 'drv'"),
    ({"journal": {"dir": "measure.d/.j"}}, "aggregator.journal.dir",
     "drivers directory 'measure.d'"),
    ({"journal": {"max_bytes": 65535}}, "aggregator.journal.max_bytes",
     "from 65536 (64 KiB) to 1073741824 (1 GiB), not 65535"),
    ({"journal": {"max_bytes": 2**30 + 1}}, "aggregator.journal.max_bytes", "1 GiB"),
    ({"journal": {"max_bytes": "16M"}}, "aggregator.journal.max_bytes", "whole number"),
    ({"journal": {"max_bytes": 1e6}}, "aggregator.journal.max_bytes", "whole number"),
    ({"journal": {"max_bytes": True}}, "aggregator.journal.max_bytes", "whole number"),
    ({"journal": {"enabled": "no"}}, "aggregator.journal.enabled", "true or false"),
    ({"metrics_file": "servo_agg.txt"}, "aggregator.metrics_file", "ending in .prom"),
    ({"metrics_file": 3}, "aggregator.metrics_file", "ending in .prom"),
    ({"metrics_file": ""}, "aggregator.metrics_file", "ending in .prom"),
    # --check and --last died of "ValueError: embedded null byte" (review 1.5)
    ({"journal": {"dir": "log\0x"}}, "aggregator.journal.dir", "must not contain a NUL byte"),
    ({"metrics_file": "m\0.prom"}, "aggregator.metrics_file", "must not contain a NUL byte"),
    ({"journal": {"dir": "j" * 256}}, "aggregator.journal.dir", "longer than a path may be"),
    ({"journal": {"dir": "/".join(["j" * 200] * 21)}}, "aggregator.journal.dir",
     "longer than a path may be (4095 bytes, each name in it 255)"),
    ({"metrics_file": "/" + "m" * 251 + ".prom"}, "aggregator.metrics_file",
     "longer than a path may be"),
    ({"metrics_file": "\ud800.prom"}, "aggregator.metrics_file",
     "no file name this system can encode"),
])
def test_each_bad_value_is_an_error_naming_its_key(section: dict[str, Any], names: str,
                                                   says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_section(section)
    assert caught.value.reason == "bad-config"
    assert f"config.yaml: {names}:" in caught.value.message
    assert says in caught.value.message


def test_the_default_journal_dir_is_kept_whatever_the_drivers_dir() -> None:
    """Only a journal dir set on purpose is refused in a drivers dir: `.servo-agg` is
    hidden, which discovery never runs."""
    assert parse_section({"drivers_dir": "."}).journal.dir == ".servo-agg"
