"""`adjust --check [app]` and `measure --check [app]`: a deployment doctor for one
servo root.

It looks at everything servo would meet through the aggregator (config.yaml, the files
in the drivers directory, who else could change them, what servo-agg and the drivers run
on, each driver's --info and --query, the descriptor rules, settings claimed twice,
servo's environment) and says what is wrong in words. A failure is what servo or
servo-agg would refuse; a warning is what works but may not do what was meant, or what
only the optimizer may object to. It exits 0 only when nothing fails. servo never calls
it: the report is text, or with --json one JSON document.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aggregator import PRODUCT, __version__
from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.calls import Command as AdjustCommand
from aggregator.adjust.groups import adjust_groups
from aggregator.limits import CHECK_IO_TIMEOUT_SECONDS, MEASURE_SILENCE_SECONDS
from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.process.confine import Confinement
from aggregator.protocol.descriptor import DescriptorShapeError, normalize, settings_of
from aggregator.protocol.environment import (
    CONFIG_IO_TIMEOUT,
    IO_TIMEOUT_VAR,
    ServoEnvironment,
    cancel_grace_for,
    kill_grace_for,
    line_limit_for,
    parse_io_timeout,
    parse_stderr_mode,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import MetricsShapeError, described_metrics
from aggregator.protocol.result import judge
from aggregator.protocol.text import clip, one_line, show_bytes, visible
from aggregator.protocol.validation import describe_setting, setting_problems, show
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import (
    LIMIT_KEYS,
    SECTION,
    AggregatorConfig,
    ResourceLimits,
    RunBounds,
    misspelling_warnings,
    parse_document,
    parse_section,
)
from aggregator.root.config_probe import CONFIG_FILE, read_config_text
from aggregator.root.discovery import Candidate, Driver, program_fix, scan, unrun_programs
from aggregator.root.front_end import FrontEnd, drivers_of
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output
from aggregator.supervision.run import Command, Run
from aggregator.supervision.session import Session
from aggregator.supervision.signals import EarlySignals
from aggregator.supervision.spec import CallOutcome, question
from aggregator.supervision.versions import reported_version
from aggregator.tools.runtime import (
    NEEDED_ONLY_FOR,
    REQUIREMENTS,
    Dependency,
    dependencies,
    env_interpreters,
    own_python,
)
from aggregator.tools.security import nobody_else, security_warnings

Level = Literal["ok", "note", "warn", "FAIL", "--"]
#: A level as --json says it: notes and files that are not drivers need nothing done.
STATUS: dict[Level, str] = {"ok": "ok", "note": "ok", "--": "ok", "warn": "warn",
                            "FAIL": "fail"}


@dataclass
class Finding:
    """One check, as --json gives it: which check, ok|warn|fail, about what, and what."""

    name: str
    status: str
    subject: str
    detail: str

#: Where T comes from in --check's own run when neither servo nor config.yaml sets one.
CHECK_IO_TIMEOUT = "--check's own default"


@dataclass
class Report:
    """The report's lines, its findings, and how many problems (servo would fail) and
    warnings it has. Each item belongs to the section its heading opened (`check`) and,
    within it, to the current `subject` (a driver, a variable)."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0
    warnings: int = 0
    findings: list[Finding] = field(default_factory=list)
    check: str = "start"
    subject: str = ""

    def heading(self, text: str, check: str | None = None) -> None:
        self.lines.extend(["", text])
        self.check = check or text.rstrip("/")
        self.subject = ""

    def item(self, level: Level, text: str, indent: int = 2, *, check: str | None = None,
             subject: str | None = None, label: str = "") -> None:
        """A line (`label`, a column of names, then `text`) and its finding (`text`)."""
        if level == "FAIL":
            self.problems += 1
        elif level == "warn":
            self.warnings += 1
        tag = f"[{level}]"
        pad = " " * indent
        first, *rest = (label + text).splitlines() or [""]
        self.lines.append(f"{pad}{tag:<7}{first}")
        self.lines.extend(f"{pad}{'':7}{line}" for line in rest)
        self.findings.append(Finding(check or self.check, STATUS[level],
                                     self.subject if subject is None else subject, text))

    def detail(self, text: str, indent: int = 2) -> None:
        self.lines.append(" " * (indent + 7) + text)
        if self.findings:
            self.findings[-1].detail += "\n" + text

    def as_json(self, root: Path, front: FrontEnd, app: str, *,
                interrupted: bool = False) -> dict[str, Any]:
        """The whole report as one JSON document (a container health check parses one)."""
        return {"servo_root": str(root), "front_end": str(front), "app": app,
                "result": "interrupted" if interrupted
                          else "ok" if self.problems == 0 else "fail",
                "problems": self.problems, "warnings": self.warnings,
                "checks": [vars(f) for f in self.findings]}


@dataclass
class Probe:
    """What one driver said to --info and --query."""

    driver: Driver
    info: CallOutcome
    query: CallOutcome


def applied_io_timeout(env: Mapping[str, str], io_timeout: float | None) -> float | None:
    """The T a run would have here: servo's OPTUNE_IO_TIMEOUT, else config.yaml's
    `io_timeout` (a broken variable counts as unset; check_environment reports it)."""
    try:
        servo = parse_io_timeout(env.get(IO_TIMEOUT_VAR))
    except AggregatorError:
        servo = None
    return ServoEnvironment(servo, "all").with_fallback(io_timeout, CONFIG_IO_TIMEOUT).io_timeout


def shown_graces(kill_grace: float, cancel_grace: float, io_timeout: float | None) -> str:
    """`kill_grace 5 s (cut to 0.5 s to fit T = 2 s), cancel_grace 3 s`: each as it
    applies, said where T leaves less room than config.yaml gives."""
    def one(key: str, given: float, applied: float) -> str:
        cut = (f" (cut to {show(applied)} s to fit T = {show(io_timeout)} s)"
               if applied < given and io_timeout is not None else "")
        return f"{key} {show(given)} s{cut}"

    return (one("kill_grace", kill_grace, kill_grace_for(io_timeout, kill_grace)) + ", "
            + one("cancel_grace", cancel_grace, cancel_grace_for(io_timeout, cancel_grace)))


def check_config(report: Report, root: Path, front: FrontEnd = FrontEnd.ADJUST,
                 env: Mapping[str, str] | None = None) -> AggregatorConfig:
    """config.yaml and its aggregator section; the defaults when it cannot be used. The
    graces are shown as they apply under the T of servo's `env` (os.environ by default)."""
    report.heading("config.yaml", "config")
    report.subject = CONFIG_FILE
    try:
        text = read_config_text(root)
        for warning in misspelling_warnings(text):
            report.item("warn", warning)
        document = None if text is None else parse_document(text, root / CONFIG_FILE)
    except AggregatorError as err:
        report.item("FAIL", f"{err.message}\nservo-agg refuses to run until it is fixed; "
                            "the rest of this check uses the defaults")
        return AggregatorConfig()
    if document is None:
        report.item("note", "no config.yaml (or it is empty): servo-agg uses its defaults")
        return AggregatorConfig()
    try:
        config = parse_section(document.get(SECTION))
    except AggregatorError as err:
        report.item("FAIL", f"{err.message}\nservo-agg refuses to run until it is fixed; "
                            "the rest of this check uses the defaults")
        return AggregatorConfig()
    where = "aggregator section" if SECTION in document else "no aggregator section, defaults"
    timeout = applied_io_timeout(os.environ if env is None else env, config.io_timeout)
    report.item("ok", f"{where}: drivers_dir {clip(one_line(config.drivers_dir))}, "
                      f"on_failure {config.on_failure}, "
                      f"parallel_queries {str(config.parallel_queries).lower()}, "
                      + shown_graces(config.kill_grace, config.cancel_grace, timeout))
    if front is FrontEnd.MEASURE:
        m = config.measure
        grace = "off" if m.window_grace is None else f"{show(m.window_grace)} s"
        report.item("ok", f"measure: drivers_dir {clip(one_line(m.drivers_dir))}, "
                          f"on_failure {m.on_failure}, window_grace {grace}, "
                          f"missing_metrics {m.missing_metrics}, "
                          + shown_graces(m.kill_grace, m.cancel_grace, timeout))
        for name, policy in m.drivers.items():
            if not policy.enabled:
                report.detail(f"driver {clip(one_line(name))}: disabled")
    for name, policy in config.drivers.items() if front is FrontEnd.ADJUST else ():
        report.detail(f"driver {clip(one_line(name))}: weight {show(policy.weight)}"
                      + ("" if policy.enabled else ", disabled"))
    others = [str(key) for key in document if key != SECTION]
    if others:
        report.item("note", "other sections (each driver reads the one named after itself, "
                            f"whatever its file is called): "
                            f"{clip(one_line(', '.join(others)), 1000)}")
    return config


def check_drivers_dir(report: Report, root: Path, config: AggregatorConfig,
                      front: FrontEnd = FrontEnd.ADJUST,
                      warn: Callable[[str], None] | None = None) -> list[Driver]:
    """Each file in the drivers directory and why it is or is not a driver; a program
    without its execute bit is also `warn`ed of (stderr and the run's record), as every
    command that runs drivers does."""
    where, disabled = drivers_of(config, front)
    drivers_dir = root / where
    report.heading(f"{where}/", "drivers-dir")
    report.subject = where
    try:
        candidates = scan(drivers_dir)
    except AggregatorError as err:
        report.item("FAIL", err.message)
        return []
    if warn is not None:
        for warning in unrun_programs(where, candidates):
            warn(warning)
    width = max((len(c.name) for c in candidates), default=0)
    drivers: list[Driver] = []
    for c in candidates:
        if c.is_driver and c.name in disabled:
            report.item("--", "not run: disabled in config.yaml", check="driver-file",
                        subject=c.name, label=f"{c.name:<{width}}  ")
        elif c.is_driver:
            report.item("ok", f"driver ({c.why})", check="driver-file", subject=c.name,
                        label=f"{c.name:<{width}}  ")
            drivers.append(Driver(c.name, c.path))
        elif c.program is not None:
            report.item("warn", f"not a driver: not executable, though {c.program}: "
                                f"servo-agg does not run it. If it is a driver: "
                                f"{program_fix(where, c)}", check="driver-file",
                        subject=c.name, label=f"{c.name:<{width}}  ")
        else:
            report.item("--", f"not a driver: {c.why}", check="driver-file", subject=c.name,
                        label=f"{c.name:<{width}}  ")
    _check_policy_names(report, candidates, config, front)
    nothing = "metrics" if front is FrontEnd.MEASURE else "settings to adjust"
    if not candidates:  # allowed (an install checked before its drivers are added)
        report.item("warn", f"empty: servo-agg runs, but no driver: servo would see no "
                            f"{nothing}. Put the {front} drivers to aggregate here")
    elif not drivers:
        report.item("warn", f"no driver would run: servo-agg runs, but servo would see no "
                            f"{nothing}")
    return drivers


def check_security(report: Report, root: Path, config: AggregatorConfig,
                   drivers: list[Driver], euid: int | None = None,
                   front: FrontEnd = FrontEnd.ADJUST) -> None:
    """Who besides servo's user could change what servo runs (see tools/security.py):
    warnings, not failures."""
    report.heading("security")
    report.subject = str(root)
    euid = os.geteuid() if euid is None else euid
    drivers_dir, _ = drivers_of(config, front)
    found = security_warnings(root, drivers_dir, drivers, euid)
    for line in found:
        report.item("warn", line)
    if not found:
        report.item("ok", nobody_else(drivers_dir, euid))


def _check_policy_names(report: Report, candidates: list[Candidate],
                        config: AggregatorConfig, front: FrontEnd) -> None:
    """A policy for a name that is no driver is most likely a typo: it does nothing."""
    by_name = {c.name: c for c in candidates}
    policies = config.measure.drivers if front is FrontEnd.MEASURE else config.drivers
    key = f"{SECTION}.measure.drivers" if front is FrontEnd.MEASURE else f"{SECTION}.drivers"
    for name in policies:
        found = by_name.get(name)
        if found is None:
            report.item("warn", f"config.yaml {key}.{clip(one_line(name))}: no "
                                "such file here; the policy applies to nothing (names are "
                                "file names)")
        elif not found.is_driver:
            report.item("warn", f"config.yaml {key}.{clip(one_line(name))}: not "
                                f"a driver ({found.why}); the policy applies to nothing")


def asks_at_once(config: AggregatorConfig, front: FrontEnd) -> bool:
    """Whether --check asks the drivers all at once, as the run asks its first question:
    measure drivers always describe together, adjust drivers' queries run together with
    parallel_queries. Its --info calls go the same way."""
    return front is FrontEnd.MEASURE or config.parallel_queries


def probe_command(drivers: Sequence[Driver], app: str, probes: list[Probe],
                  front: FrontEnd = FrontEnd.ADJUST, *, parallel: bool = False) -> Command:
    """Every driver's --info, then every driver's --query (--describe for measure), under
    the same supervision as a real run, one at a time or, `parallel`, each round all at
    once (each call still has its own deadline: a hung one is killed alone); the probes
    are collected in `probes`."""
    asked = Call.DESCRIBE if front is FrontEnd.MEASURE else Call.QUERY

    async def probe(session: Session) -> int:
        infos = await session.call_all([question(d, Call.INFO, app) for d in drivers],
                                       parallel=parallel)
        queries = await session.call_all([question(d, asked, app) for d in drivers],
                                         parallel=parallel)
        probes.extend(Probe(d, i, q) for d, i, q in zip(drivers, infos, queries, strict=True))
        return 0 if not session.control.stopping else 128 + (
            session.control.terminated_by or 0)

    return probe


def room_for(run: Run, drivers: Sequence[Driver], app: str, config: AggregatorConfig,
             front: FrontEnd) -> tuple[Level, str] | None:
    """Whether the drivers a run of this root must start together (measure drivers, the
    queries with parallel_queries, the largest adjust group) fit in the descriptors, as
    the run itself judges it before any driver starts; None when one at a time will do.
    Called inside the Run, whose descriptor limit is raised as the real run's is."""
    names = tuple(drivers)
    need, why = (MeasureJob(MeasureCommand.MEASURE, app, config.measure, names).at_once()
                 if front is FrontEnd.MEASURE else
                 AdjustJob(AdjustCommand.ADJUST, app, config, names).at_once())
    if need <= 1:
        return None
    try:
        run.require_room(need, why)
    except AggregatorError as err:
        return "FAIL", f"servo-agg would refuse every {front} ({err.reason}): {err.message}"
    return "ok", f"file descriptors: the {need} drivers a run starts at once ({why}) fit"


def _slow(report: Report, outcome: CallOutcome, line_limit: float | None) -> None:
    if line_limit is not None and outcome.elapsed > line_limit / 2:
        report.item("warn", f"--{outcome.spec.call} took {outcome.elapsed:.1f} s, over half "
                            f"of the {line_limit:g} s servo-agg waits for a line", indent=4,
                    check=str(outcome.spec.call))


def _failed(report: Report, outcome: CallOutcome) -> bool:
    """Reports a failed call (with the start of its stderr); True when it failed."""
    failure = judge(outcome, "all")
    if failure is None:
        return False
    stderr = failure.stderr.strip()
    report.item("FAIL", f"--{outcome.spec.call} failed: {failure.message}"
                        + (f"\nstderr: {stderr[:500]}" if stderr else ""), indent=4,
                check=str(outcome.spec.call))
    return True


def check_probe(report: Report, probe: Probe, line_limit: float | None,
                front: FrontEnd = FrontEnd.ADJUST) -> Collection[Hashable] | None:
    """One driver's section: its --info and --query (--describe), each judged unless the
    check's interruption cut it (then it is not checked, and no problem); what it owns,
    None when its answer cannot be used."""
    report.lines.append(f"  {probe.driver.name}")
    report.subject = probe.driver.name

    def not_checked(outcome: CallOutcome) -> bool:
        if outcome.cut_by_the_stop:
            report.item("--", f"--{outcome.spec.call} not checked: the check was "
                              "interrupted", indent=4, check=str(outcome.spec.call))
            return True
        return False

    if not not_checked(probe.info):
        check_info(report, probe.info, line_limit, front)
    if not_checked(probe.query):
        return None
    return (check_describe if front is FrontEnd.MEASURE else check_query)(
        report, probe.query, line_limit)


def check_info(report: Report, outcome: CallOutcome, line_limit: float | None,
               front: FrontEnd = FrontEnd.ADJUST) -> None:
    if _failed(report, outcome):
        return
    result = outcome.result or {}
    version, has_cancel = result.get("version"), result.get("has_cancel")
    if reported_version(result) is None:
        report.item("FAIL", f"--info gave no version ({outcome.elapsed:.2f} s): "
                            f"`{front} --version` names this driver failing and exits 1",
                    indent=4, check="info")
    else:
        report.item("ok", f"--info: version {show(version)}, has_cancel {show(has_cancel)} "
                          f"({outcome.elapsed:.2f} s)", indent=4, check="info")
    if not isinstance(has_cancel, bool):
        report.item("note", "--info has no true/false has_cancel: nothing here reads it "
                            "(servo-agg cancels every driver with SIGUSR1, whatever it "
                            "says; servo would read it only if it ran this driver itself)",
                    indent=4, check="info")
    _slow(report, outcome, line_limit)


def check_query(report: Report, outcome: CallOutcome,
                line_limit: float | None) -> dict[tuple[str, str], dict[str, Any]] | None:
    """The driver's settings (None when its --query cannot be used), each validated."""
    if _failed(report, outcome):
        return None
    assert outcome.result is not None
    try:
        settings = settings_of(normalize(outcome.result))
    except DescriptorShapeError as exc:
        report.item("FAIL", f"--query: output is not a descriptor: {exc}", indent=4,
                    check="query")
        return None
    broken = {key: setting_problems(spec) for key, spec in settings.items()}
    bad = sum(1 for problems in broken.values() if problems)
    count = len(settings)
    summary = (f"--query: {count} setting{'s' if count != 1 else ''}"
               + (f", {bad} breaking the descriptor rules: servo and servo-agg pass "
                  "them on as they are, but the optimizer may refuse them" if bad else "")
               + f" ({outcome.elapsed:.2f} s)")
    report.item("warn" if bad else "ok", summary, indent=4, check="query")
    width = max((len(f"{c}.{s}") for c, s in settings), default=0)
    for (component, setting), spec in settings.items():
        report.detail(f"{component + '.' + setting:<{width}}  {describe_setting(spec)}",
                      indent=4)
        for problem in broken[(component, setting)]:
            report.detail(f"{'':<{width}}  ! {problem}", indent=4)
    if not settings:
        report.item("warn", "reports no settings: it will never be given anything to adjust",
                    indent=4, check="query")
    _slow(report, outcome, line_limit)
    return settings


def check_describe(report: Report, outcome: CallOutcome,
                   line_limit: float | None) -> dict[str, Any] | None:
    """The driver's metrics (None when its --describe cannot be used)."""
    if _failed(report, outcome):
        return None
    assert outcome.result is not None
    try:
        metrics = described_metrics(outcome.result)
    except MetricsShapeError as exc:
        report.item("FAIL", f"--describe: output is not a metrics description: {exc}",
                    indent=4, check="describe")
        return None
    count = len(metrics)
    report.item("ok", f"--describe: {count} metric{'s' if count != 1 else ''} "
                      f"({outcome.elapsed:.2f} s)", indent=4, check="describe")
    for name, spec in metrics.items():
        unit = spec.get("unit")
        report.detail(clip(one_line(name)) + (f" ({clip(one_line(str(unit)), 40)})"
                                              if unit is not None else ""), indent=4)
    if not metrics:
        report.item("note", "describes no metrics: fine for a load generator, which is "
                            "useful only beside a driver that returns metrics", indent=4,
                    check="describe")
    _slow(report, outcome, line_limit)
    return metrics


def check_duplicates(report: Report, owned: list[tuple[str, Collection[Hashable]]],
                     front: FrontEnd = FrontEnd.ADJUST, asked: int | None = None) -> None:
    """Each setting (adjust) or metric (measure) must belong to exactly one driver.
    `owned` holds the drivers whose answer could be used, of the `asked` ones: a summary
    counts only what was checked."""
    what = "metric" if front is FrontEnd.MEASURE else "setting"
    report.heading(f"{what}s", "duplicates")
    asked = len(owned) if asked is None else asked
    call = "--describe" if front is FrontEnd.MEASURE else "--query"
    if asked and not owned:
        report.item("--", f"not checked: no driver's {call} answer could be used")
        return
    of = (f" from {len(owned)} of {asked} drivers ({asked - len(owned)} could not be "
          f"asked: see above)" if len(owned) < asked else "")
    owners: dict[Hashable, list[str]] = {}
    for driver, keys in owned:
        for key in keys:
            owners.setdefault(key, []).append(driver)
    duplicates = {key: names for key, names in owners.items() if len(names) > 1}
    for key, names in duplicates.items():
        shown = ".".join(key) if isinstance(key, tuple) else str(key)
        report.item("FAIL", f"{clip(shown)} is reported by {' and '.join(names)}: "
                            f"each {what} must belong to exactly one driver")
    if duplicates:
        return
    if front is FrontEnd.MEASURE:
        report.item("ok", f"{len(owners)} metrics{of}, each described by exactly one driver")
        return
    components = {key[0] for key in owners if isinstance(key, tuple)}
    report.item("ok", f"{len(owners)} settings in {len(components)} components{of}, "
                      "each reported by exactly one driver")


def check_answers(report: Report, probes: Sequence[Probe], line_limit: float | None,
                  config: AggregatorConfig, drivers: Sequence[Driver],
                  front: FrontEnd = FrontEnd.ADJUST) -> None:
    """The drivers section, from what probe_command collected: each driver's answers,
    then what they add up to (duplicates, and for adjust the groups)."""
    report.heading("drivers")
    owned: list[tuple[str, Collection[Hashable]]] = []
    for probe in probes:
        described = check_probe(report, probe, line_limit, front)
        if described is not None:
            owned.append((probe.driver.name, described))
    check_duplicates(report, owned, front, asked=len(probes))
    if front is FrontEnd.ADJUST:
        check_groups(report, config, drivers, owned)


def check_environment(report: Report, env: Mapping[str, str], kill_grace: float,
                      front: FrontEnd = FrontEnd.ADJUST,
                      io_timeout: float | None = None) -> ServoEnvironment:
    """servo's variables and what OPTUNE_IO_TIMEOUT means here, config.yaml's `io_timeout`
    standing in where servo sets none; a broken variable counts as unset for the rest of
    the check."""
    report.heading("environment")
    report.subject = "OPTUNE_VERBOSE_STDERR"
    try:
        stderr_mode = parse_stderr_mode(env.get("OPTUNE_VERBOSE_STDERR"))
    except AggregatorError as err:
        report.item("FAIL", err.message)
        stderr_mode = "all"
    report.subject = "OPTUNE_IO_TIMEOUT"
    try:
        environment = ServoEnvironment(parse_io_timeout(env.get("OPTUNE_IO_TIMEOUT")),
                                       stderr_mode)
    except AggregatorError as err:
        report.item("FAIL", err.message)
        environment = ServoEnvironment(None, stderr_mode)
    environment = environment.with_fallback(io_timeout, CONFIG_IO_TIMEOUT)
    timeout, limit = environment.io_timeout, environment.line_limit
    if timeout is None or limit is None:
        report.item("note", "OPTUNE_IO_TIMEOUT is not set (or 0) here, nor io_timeout in "
                            "config.yaml: servo-agg would wait for each driver line as long "
                            "as it takes.\n"
                            "When servo sets it to T, servo-agg waits at most T-1 s per line "
                            "(T/2 when T <= 2) and kills only the silent driver.\n"
                            "This check allowed each driver "
                            f"{show(line_limit_for(CHECK_IO_TIMEOUT_SECONDS))} s per line.")
        return environment
    servos = environment.io_timeout_source == IO_TIMEOUT_VAR
    named = (f"OPTUNE_IO_TIMEOUT={show(timeout)}" if servos else
             f"io_timeout={show(timeout)} (config.yaml: servo sets no OPTUNE_IO_TIMEOUT here)")
    grace = kill_grace_for(timeout, kill_grace)
    report.item("note", f"{named}: servo-agg waits at most {show(limit)} s for each line "
                        f"from a driver, then kills it (SIGTERM, {show(grace)} s grace, "
                        "SIGKILL)" + (" before servo gives up" if servos else ""))
    if timeout <= 2:
        report.item("warn", f"{named} is very short: each driver gets {show(limit)} s per "
                            "line, less than many drivers need just to start")
    elif front is FrontEnd.MEASURE and timeout < MEASURE_SILENCE_SECONDS:
        report.item("warn", f"{named} is below {show(MEASURE_SILENCE_SECONDS)} s: real "
                            "measure drivers print nothing for up to 30 s (a Prometheus "
                            "reader sleeps through its whole window), so servo-agg would "
                            "kill them as silent")
    return environment


def _by_value(values: Mapping[str, str | None]) -> str:
    """`512 MiB (10-web, 20-db), none (30-x)`: drivers grouped by what they have."""
    groups: dict[str | None, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(clip(one_line(name)))
    if len(groups) == 1:
        return f"{next(iter(groups)) or 'none'} for every driver"
    return ", ".join(f"{value or 'none'} ({', '.join(names)})" for value, names in
                     groups.items())


def _shown_limit(key: str, limits: ResourceLimits) -> str | None:
    value = getattr(limits, key)
    if value is None:
        return None
    if key == "memory":
        return show_bytes(value)
    return f"{show(value)} CPU{'s' if value != 1 else ''}" if key == "cpu" else str(value)


def check_bounds(report: Report, run_bounds: RunBounds, environment: ServoEnvironment,
                 confinement: Confinement) -> None:
    """What bounds each driver's calls here: which could hang forever, and how each
    resource limit is enforced on this host (warnings where one is not)."""
    report.heading("bounds")
    bounds = run_bounds.drivers
    if environment.io_timeout is None:
        unbounded = [clip(one_line(name)) for name, b in bounds.items() if b.deadline is None]
        if unbounded:
            who, them = ((f"{unbounded[0]} could", "it") if len(unbounded) == 1
                         else (f"{', '.join(unbounded)} could each", "them"))
            report.item("warn", f"{who} hang forever, and servo with {them}: servo "
                                "sets no OPTUNE_IO_TIMEOUT here, and config.yaml no "
                                "io_timeout, nor a deadline for "
                                f"{them} (set one)", subject=", ".join(unbounded))
    else:
        report.item("ok", f"each driver's lines: within {show(environment.line_limit)} s "
                          f"(T={show(environment.io_timeout)} from "
                          f"{environment.io_timeout_source})", subject="io_timeout")
    if any(b.deadline is not None for b in bounds.values()):
        deadlines = {name: None if b.deadline is None else f"{show(b.deadline)} s"
                     for name, b in bounds.items()}
        report.item("ok", f"deadline of each call: {_by_value(deadlines)}", subject="deadline")
    limited = run_bounds.limited
    for key in limited:
        values = _by_value({name: _shown_limit(key, b.limits) for name, b in bounds.items()})
        report.item("ok" if confinement.enforced(key) else "warn",
                    f"limits.{key} {values}: {confinement.describe(key)}",
                    subject=f"limits.{key}")
    unset = [f"limits.{key}" for key in LIMIT_KEYS if key not in limited]
    if unset:
        report.item("note", f"no {', '.join(unset)}: a driver may take all of it that "
                            "servo-agg may (limits: in config.yaml)", subject="limits")


def check_journal(report: Report, root: Path, config: AggregatorConfig) -> None:
    """Where each run is recorded, whether it can be, and how large the journal is (a
    journal that cannot be written costs each run a note, nothing more: a warning)."""
    from aggregator.journal.reader import inspect

    report.heading("journal")
    report.subject = "journal"
    journal = config.journal
    if not journal.enabled:
        report.item("note", "journal.enabled is false: runs are not recorded (--last, "
                            "--show and --history show what was recorded before)")
    else:
        state = inspect(root, journal)
        size = (f"{show_bytes(state.size)} in {state.files} file"
                f"{'s' if state.files != 1 else ''}" if state.files else "empty")
        report.item("ok" if state.writable else "warn",
                    f"{state.where}: {size}, at most {show_bytes(journal.max_bytes)}; "
                    + ("each run is recorded there" if state.writable else
                       "runs cannot be recorded there") + (f" ({state.why})" if state.why
                                                            else ""))
    if config.metrics_file is not None:
        report.item("note", f"metrics file: {clip(one_line(config.metrics_file))}, updated "
                            "by each run", subject="metrics_file")


def check_groups(report: Report, config: AggregatorConfig, drivers: Sequence[Driver],
                 owned: Sequence[tuple[str, Collection[Hashable]]]) -> None:
    """The adjust groups in the order they run; a warning where two drivers of one group
    change settings of the same component, since they would change it at the same time."""
    groups = adjust_groups(config, [d.name for d in drivers])
    report.heading("groups")
    if not any(g.concurrent for g in groups):
        report.item("ok", "each driver adjusts alone, one after another, in file-name order "
                          "(groups: prefix or drivers.<file>.group run some at once)")
        return
    def shown(name: str) -> str:  # a file name may hold a newline: the line stays one
        return visible(name, newlines=False)

    for step, group in enumerate(groups, 1):
        members = "" if group.name is None else (  # a named group says who is in it
            ": " + ", ".join(map(shown, group.members))
            + (", at once" if group.concurrent else ""))
        report.item("ok", f"{step}. {shown(group.label())}{members}", subject=group.label())
    settings = dict(owned)
    for group in groups:
        components: dict[str, list[str]] = {}
        for name in group.members:
            for component in sorted({key[0] for key in settings.get(name, ())
                                     if isinstance(key, tuple)}):
                components.setdefault(component, []).append(name)
        for component, names in components.items():
            if len(names) > 1:
                report.item("warn", f"{' and '.join(map(shown, names))} both change "
                                    f"component {clip(component)}, in "
                                    f"{shown(group.label())}: they would "
                                    "change it at the same time (put them in groups of "
                                    "their own if one must follow the other)",
                            subject=group.label())


def check_runtime(report: Report, env: Mapping[str, str], drivers: Sequence[Driver],
                  config: AggregatorConfig | None = None) -> None:
    """servo-agg's Python, its dependencies against the declared minimums (one that only
    a config key needs counts only when the key is set), and what a driver's
    `#!/usr/bin/env` line runs on the drivers' PATH (servo-agg's own)."""
    config = AggregatorConfig() if config is None else config
    report.heading("runtime")
    report.item("ok", f"servo-agg runs on {own_python()}", subject="python")
    try:
        found = dependencies()
    except OSError as exc:
        report.item("warn", f"cannot tell the declared minimum versions: {REQUIREMENTS} "
                            f"cannot be read ({exc.strerror})", subject="requirements")
        found = []
    for dep in found:
        _check_dependency(report, dep, config)
    interpreters, unrun = env_interpreters(drivers, env)
    for broken in unrun:
        fix = broken.fix(env)
        report.item("FAIL", f"#!/usr/bin/env {clip(one_line(broken.argument), 300)} "
                            f"({broken.driver}): runs no interpreter: "
                            f"{clip(one_line(broken.why), 300)}"
                            + (f"\nthe kernel gives env all of it as one argument; "
                               f"{clip(one_line(fix), 400)}" if fix else ""),
                    subject=broken.driver)
    for interpreter in interpreters:
        users = (f" ({', '.join(interpreter.drivers)})" if interpreter.drivers
                 else " (no driver here names it)")
        line = f"#!/usr/bin/env {clip(one_line(interpreter.name), 300)}{users}"
        if interpreter.search_path is None:
            where = "the drivers' PATH"
            searched = clip(env.get("PATH", os.defpath), 300)
            searched_text = f"the drivers' PATH, which is servo-agg's ({searched})"
        else:
            shown = clip(one_line(interpreter.search_path), 300)
            where = searched_text = (f"the PATH their line sets ({shown})"
                                     if interpreter.path_from == "PATH=" else
                                     f"the system's default path ({shown}): their line "
                                     f"clears PATH ({interpreter.path_from})")
        if interpreter.found is None:
            report.item("FAIL" if interpreter.drivers else "note",
                        f"{line}: no {clip(one_line(interpreter.name), 300)} on "
                        f"{searched_text}", subject=interpreter.name)
            continue
        real = f" (-> {interpreter.real})" if interpreter.real else ""
        report.item("ok", f"{line} runs {interpreter.found}{real}, first on {where}",
                    subject=interpreter.name)


def _check_dependency(report: Report, dep: Dependency, config: AggregatorConfig) -> None:
    """A dependency against its declared minimum: missing or below it fails where
    servo-agg needs it to run; one that only a config key needs is a warning where the
    key is set (the runs go on without what it does), a note where it is not."""
    wanted = f"'{dep.name}>={dep.minimum}'"
    key = NEEDED_ONLY_FOR.get(dep.name)
    needed = key is None or getattr(config, key) is not None
    if dep.found and not dep.too_old and dep.installed is not None:
        report.item("ok", f"{dep.name} {dep.installed} (declared minimum {dep.minimum})",
                    subject=dep.name)
        return
    if not dep.found:
        state, fix = "is not installed for this Python", f"pip install {wanted}"
    elif dep.too_old:
        state = (f"{dep.installed} is below the declared minimum {dep.minimum}, which "
                 "servo-agg is proven to work with")
        fix = f"pip install --upgrade {wanted}"
    else:
        state = ("is installed but says no version (no package metadata, no __version__): "
                 f"servo-agg may fail if it is below the declared minimum {dep.minimum}")
        fix = f"pip install {wanted}"
    level: Level = "FAIL" if not dep.found or dep.too_old else "warn"
    why = ""
    if key is not None and needed:  # servo still works: only that file goes stale
        level, why = "warn", (f"; {key} is set, which needs it: runs go on, but do not "
                              "update the file")
    elif key is not None:
        level, why = "note", f"; only {key} needs it, and it is not set here"
    report.item(level, f"{dep.name} {state}{why}: {fix}", subject=dep.name)


def check_not_shown(report: Report, front: FrontEnd) -> None:
    """What --check cannot see: it asks, it never changes or measures anything."""
    report.heading("not shown", "not-shown")
    if front is FrontEnd.MEASURE:
        said = ("--check ran each driver's --info and --describe, never a measure: a "
                "driver that fails only while measuring (its target, its credentials, its "
                "window) is not seen here.\n`./measure --dry-run app` shows what each "
                "driver would be sent")
    else:
        said = ("--check ran each driver's --info and --query, never an adjust: a driver "
                "that fails only when it changes something (a value it refuses, its "
                "permissions) is not seen here.\n`./adjust --dry-run app` shows what each "
                "driver would be sent")
    report.item("note", said, subject=str(front))


def run_check(root: Path, app: str, output: Output, *, verbose: bool = False,
              env: Mapping[str, str] | None = None, early: EarlySignals | None = None,
              front: FrontEnd = FrontEnd.ADJUST, facts: RunFacts | None = None,
              as_json: bool = False) -> int:
    """Print the report on stdout (one JSON document with `as_json`); 0 only when servo
    would work with this root, the same with or without --json."""
    env = os.environ if env is None else env
    report = Report()
    report.lines.append(f"{PRODUCT} {__version__}: checking servo root {root} for {front}"
                        + (f" for app {app}" if app else " (no app id given: drivers "
                                                         "are asked without one)"))
    config = check_config(report, root, front, env)
    drivers = check_drivers_dir(report, root, config, front, output.warn)
    check_security(report, root, config, drivers, front=front)
    check_runtime(report, env, drivers, config)
    grace = config.measure if front is FrontEnd.MEASURE else config
    environment = check_environment(report, env, grace.kill_grace, front, config.io_timeout)
    check_journal(report, root, config)
    stopped, interrupted = None, False
    if drivers:
        bounded = environment.with_fallback(CHECK_IO_TIMEOUT_SECONDS, CHECK_IO_TIMEOUT)
        probes: list[Probe] = []
        with Run(servo_root=root, env=env, environment=bounded,
                 kill_grace=grace.kill_grace, cancel_grace=grace.cancel_grace,
                 output=output, early=early, verbose=verbose, heartbeat=False,
                 driver_order=[d.name for d in drivers],
                 bounds=grace.run_bounds(d.name for d in drivers), facts=facts) as run:
            room = room_for(run, drivers, app, config, front)
            code = run.execute(probe_command(drivers, app, probes, front,
                                             parallel=asks_at_once(config, front)))
            whole, how = run.containment()
        report.heading("if servo-agg is SIGKILLed", "containment")
        report.item("ok" if whole else "warn", how)
        check_bounds(report, run.bounds, environment, run.confinement)
        if room is not None:
            report.item(*room, subject="descriptors")
        check_answers(report, probes, line_limit_for(bounded.io_timeout), config, drivers,
                      front)
        if code != 0 or len(probes) < len(drivers):
            interrupted = True
            stopped = code - 128 if code > 128 else None
            report.item("note", "interrupted: the check did not finish; what it did not "
                                "check counts as no problem", check="interrupted")
    check_not_shown(report, front)
    if as_json:
        output.json_line(report.as_json(root, front, app, interrupted=interrupted))
    else:
        verdict = ("interrupted: the check did not finish" if interrupted
                   else "servo would work with this root" if report.problems == 0
                   else "servo would NOT work with this root")
        report.lines.extend(["", f"result: {verdict} ({report.problems} problem"
                                 f"{'s' if report.problems != 1 else ''}, {report.warnings} "
                                 f"warning{'s' if report.warnings != 1 else ''}"
                                 + (" in what it checked)" if interrupted else ")")])
        output.report(report.lines)
    if stopped is not None:
        return 128 + stopped
    return 0 if report.problems == 0 else 1
