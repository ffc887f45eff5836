"""`--check` warns when someone besides root and servo's user could change what servo runs
(the section in the report ./adjust --check writes: test_check.py's
test_a_broken_root_s_check_json_is_one_document_of_the_whole_report)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import Driver
from aggregator.tools.check import Report, check_security
from aggregator.tools.security import permission_problems
from tests.support import write_driver

ME = os.geteuid()


def fake_stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@pytest.mark.unit
@pytest.mark.parametrize(("mode", "uid", "says"), [
    (stat.S_IFDIR | 0o755, 0, []),
    (stat.S_IFREG | 0o700, 1000, []),  # servo's own user (below: euid 1000)
    (stat.S_IFDIR | 0o775, 0, ["x is writable by its group (drwxrwxr-x)"]),
    (stat.S_IFREG | 0o646, 0, ["x is writable by others (-rw-r--rw-)"]),
    (stat.S_IFDIR | 0o1777, 0, ["x is writable by its group and others (drwxrwxrwt)"]),
    (stat.S_IFREG | 0o644, 4242, ["x is owned by uid 4242, neither root nor the user "
                                  "servo-agg runs as (uid 1000"]),
])
def test_permission_problems(mode: int, uid: int, says: list[str]) -> None:
    problems = permission_problems("x", fake_stat(mode, uid), euid=1000)
    assert len(problems) == len(says)
    for problem, start in zip(problems, says, strict=True):
        assert problem.startswith(start)


def security(root: Path, config: AggregatorConfig | None = None,
             drivers: list[Driver] | None = None, euid: int = ME) -> Report:
    report = Report()
    check_security(report, root, config or AggregatorConfig(), drivers or [], euid)
    return report


def warnings(report: Report) -> list[str]:
    return [line.strip() for line in report.lines if "[warn]" in line]


@pytest.mark.unit
def test_a_tidy_root_has_no_warnings(servo_root: Path) -> None:
    driver = write_driver(servo_root, "01web", "")
    (servo_root / "config.yaml").write_text("web: {}\n")
    report = security(servo_root, drivers=[Driver("01web", driver)])
    assert report.warnings == 0
    assert any("[ok]" in line and "can change the servo root" in line
               for line in report.lines)


@pytest.mark.unit
def test_each_writable_path_is_a_warning(servo_root: Path) -> None:
    driver = write_driver(servo_root, "01web", "", mode=0o775)
    (servo_root / "config.yaml").write_text("web: {}\n")
    (servo_root / "config.yaml").chmod(0o666)
    (servo_root / "adjust.d").chmod(0o777)
    servo_root.chmod(0o757)
    report = security(servo_root, drivers=[Driver("01web", driver)])
    found = warnings(report)
    assert (report.warnings, report.problems) == (4, 0), found  # warnings, not failures
    assert "the servo root is writable by others (drwxr-xrwx)" in found[0]
    assert "adjust.d/ is writable by its group and others" in found[1]
    assert "config.yaml is writable by its group and others (-rw-rw-rw-)" in found[2]
    assert "driver 01web is writable by its group (-rwxrwxr-x)" in found[3]
    assert all("whoever can change it runs code as servo" in line for line in found)


@pytest.mark.unit
def test_a_driver_is_judged_by_what_its_symlink_points_to(servo_root: Path) -> None:
    target = servo_root / "real-driver"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o777)
    (servo_root / "adjust.d" / "01web").symlink_to(target)  # a link's own mode is 0777
    report = security(servo_root, drivers=[Driver("01web", servo_root / "adjust.d" / "01web")])
    assert warnings(report) == ["[warn] driver 01web is writable by its group and others "
                                "(-rwxrwxrwx): whoever can change it runs code as servo"]
    target.chmod(0o755)
    assert security(servo_root, drivers=[Driver("01web", target)]).warnings == 0


@pytest.mark.unit
def test_a_file_owned_by_another_user_is_a_warning(servo_root: Path) -> None:
    driver = write_driver(servo_root, "01web", "")
    if ME == 0:
        os.chown(driver, 4242, -1)
        owner, euid = 4242, 0
    else:  # the files are ours: seen from another servo user, they are someone else's
        owner, euid = ME, ME + 1
    report = security(servo_root, drivers=[Driver("01web", driver)], euid=euid)
    found = warnings(report)
    assert any(f"driver 01web is owned by uid {owner}" in line for line in found), found
    if ME != 0:  # then the root and adjust.d are "another user's" too
        assert any("the servo root is owned by" in line for line in found)


@pytest.mark.unit
def test_root_owned_files_are_fine_for_any_servo_user(servo_root: Path) -> None:
    if ME != 0:
        pytest.skip("needs files owned by root")
    driver = write_driver(servo_root, "01web", "")
    assert security(servo_root, drivers=[Driver("01web", driver)], euid=1000).warnings == 0


@pytest.mark.unit
def test_a_drivers_dir_outside_the_servo_root_is_a_warning(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "servo", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    report = security(root, AggregatorConfig(drivers_dir=str(elsewhere)))
    assert warnings(report) == [f"[warn] drivers_dir {elsewhere} is outside the servo root "
                                f"{root}: whoever controls it decides what servo runs"]
    (root / "adjust.d").symlink_to(elsewhere)
    report = security(root)  # a symlink out of the root counts too
    assert warnings(report) == [f"[warn] drivers_dir adjust.d (that is, {elsewhere}) is "
                                f"outside the servo root {root}: whoever controls it "
                                "decides what servo runs"]
    report = security(root, AggregatorConfig(drivers_dir="../elsewhere"))
    assert report.warnings == 1
    (root / "mine").mkdir()
    assert security(root, AggregatorConfig(drivers_dir="mine/../mine")).warnings == 0
