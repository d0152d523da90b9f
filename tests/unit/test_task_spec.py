"""Task fields of a service (schedule, time_zone, overlap, starting_deadline, history, timeout,
VEO's ``task:`` spelling) and ``discovery``: spellings, defaults, and errors at FILE:LINE:COL."""

from __future__ import annotations

import pytest

from veo.core.calendar import Overlap
from veo.core.config import parse_spec
from veo.core.errors import SpecError
from veo.core.models import RestartPolicy, Service


# a cluster.yml (a veo top-level key, last so line numbers stay): veo's defaults, not a plain
# compose file's
TAIL = "settings: {}\n"


def load_one(*lines: str):
    text = "services:\n  job:\n    image: veo/busybox\n" + "".join(f"    {ln}\n" for ln in lines) + TAIL
    return parse_spec(text, "c.yml").spec.services["job"]


def problems(*lines: str) -> list[str]:
    text = "services:\n  job:\n    image: veo/busybox\n" + "".join(f"    {ln}\n" for ln in lines) + TAIL
    with pytest.raises(SpecError) as info:
        parse_spec(text, "c.yml")
    return [str(p) for p in info.value.problems if not p.warning]


def test_a_task_has_defaults_and_is_never_restarted() -> None:
    job = load_one('schedule: "*/5 * * * *"')
    assert job.is_task and job.schedule == ["*/5 * * * *"]
    assert job.time_zone == "UTC" and job.overlap is Overlap.forbid
    assert job.starting_deadline is None and job.timeout is None
    assert (job.history.succeeded, job.history.failed) == (3, 1)
    assert job.restart is RestartPolicy.never


def test_a_plain_service_is_not_a_task_and_keeps_restarting() -> None:
    svc = load_one()
    assert not svc.is_task and svc.restart is RestartPolicy.restart and not svc.discovery


@pytest.mark.parametrize(
    ("lines", "schedule"),
    [
        (['task: "0 3 * * *"'], ["0 3 * * *"]),  # VEO's spelling
        (["schedule: '@hourly'"], ["0 * * * *"]),
        (["schedule: '@daily'"], ["0 0 * * *"]),
        (["schedule: '@weekly'"], ["0 0 * * 0"]),
        (["schedule: '@monthly'"], ["0 0 1 * *"]),
        (["schedule: '@yearly'"], ["0 0 1 1 *"]),
        (["schedule: ['0 8 * * MON-FRI', '0 10 * * SAT,SUN']"], ["0 8 * * MON-FRI", "0 10 * * SAT,SUN"]),
        (["schedule: '  */5   * * * * '"], ["*/5 * * * *"]),
    ],
)
def test_schedule_spellings(lines: list[str], schedule: list[str]) -> None:
    assert load_one(*lines).schedule == schedule


def test_full_task() -> None:
    job = load_one(
        "task: '30 2 * * *'", "time_zone: Europe/Paris", "overlap: replace",
        "starting_deadline: 5m", "history: {succeeded: 5, failed: 2}", "timeout: 1h30m",
        "restart: on-failure:2", "instances: 3",
    )
    assert job.time_zone == "Europe/Paris" and job.overlap is Overlap.replace
    assert job.starting_deadline == 300 and job.timeout == 5400
    assert (job.history.succeeded, job.history.failed) == (5, 2)
    assert job.restart is RestartPolicy.restart and not job.restart_on_success
    assert job.restart_count == 2 and job.instances == 3


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["schedule: '61 * * * *'"], "c.yml:4:15: services.job.schedule: bad cron expression '61 * * * *': Bad minute"),
        (["schedule: '* * * *'"], "c.yml:4:15: services.job.schedule: expected 5 cron fields"),
        (["schedule: '0 0 * * * *'"], "c.yml:4:15: services.job.schedule: expected 5 cron fields"),
        (["schedule: '@reboot'"], "c.yml:4:15: services.job.schedule: @reboot is not supported"),
        (["schedule: '@fortnightly'"], "c.yml:4:15: services.job.schedule: unknown macro '@fortnightly'"),
        (["schedule:", "  - '@daily'", "  - '0 25 * * *'"], "c.yml:6:9: services.job.schedule.1: bad cron expression '0 25 * * *': Bad hour"),
        (["schedule: []"], "c.yml:4:15: services.job.schedule: expected a cron expression"),
        (["task: 5"], "c.yml:4:11: services.job.task: expected a cron expression"),
        (["schedule: '@daily'", "time_zone: Europe/Pariss"], "c.yml:5:16: services.job.time_zone: unknown time zone 'Europe/Pariss'"),
        (["schedule: '@daily'", "time_zone: ../../etc/passwd"], "c.yml:5:16: services.job.time_zone: unknown time zone"),
        (["schedule: '@daily'", "overlap: sometimes"], "c.yml:5:14: services.job.overlap: expected one of allow, forbid, replace, got 'sometimes'"),
        (["schedule: '@daily'", "starting_deadline: soon"], "c.yml:5:24: services.job.starting_deadline: expected a duration"),
        (["schedule: '@daily'", "timeout: 0"], "c.yml:5:14: services.job.timeout: expected a number > 0"),
        (["schedule: '@daily'", "history: {succeeded: -1}"], "c.yml:5:26: services.job.history.succeeded: expected a number >= 0"),
        (["schedule: '@daily'", "history: {faild: 1}"], "c.yml:5:15: services.job.history.faild: unknown key, did you mean 'failed'?"),
        (["timeout: 5m"], "c.yml:4:14: services.job.timeout: needs a schedule"),
        (["overlap: allow"], "c.yml:4:14: services.job.overlap: needs a schedule"),
        (["schedule: '@daily'", "restart: always"], "c.yml:5:14: services.job.restart: a task ends"),
        (["schedule: '@daily'", "instances: all"], "c.yml:5:16: services.job.instances: a task runs a number of copies"),
        (["schedule: '@daily'", "instances: 101"], "c.yml:5:16: services.job.instances: a task runs at most 100"),
        (["schedule: '@daily'", "task: '@daily'"], "give either 'task' or 'schedule', not both"),
    ],
)
def test_task_errors_point_at_the_line(lines: list[str], expected: str) -> None:
    found = problems(*lines)
    assert any(expected in p for p in found), found


def test_python_api_accepts_task_spelling_and_checks_rules() -> None:
    job = Service(name="job", image="veo/busybox", task="@hourly")
    assert job.schedule == ["0 * * * *"] and job.restart is RestartPolicy.never
    with pytest.raises(ValueError, match="needs a schedule"):
        Service(name="web", image="veo/httpd", timeout=5)


def test_task_calendar_fields_do_not_change_the_spec_hash() -> None:
    a = Service(name="job", image="veo/busybox", schedule="@hourly")
    b = Service(name="job", image="veo/busybox", schedule="@daily")
    assert a.spec_hash() == b.spec_hash()  # a schedule edit keeps the runs it has
    c = Service(name="job", image="veo/httpd", schedule="@daily")
    assert c.spec_hash() != b.spec_hash()


def test_discovery_flag() -> None:
    assert load_one("discovery: true").discovery is True
    assert any("discovery: expected true or false" in p for p in problems("discovery: maybe"))


def test_a_task_reloads_as_the_same_service() -> None:
    # the Scheduler stores services and reads them back after a restart: the spec hash (which
    # fences the runs' containers) must not change on the way
    from veo.adapters.store import dump_service, load_service

    for extra in ({}, {"restart": "on-failure", "restart_count": 2}, {"task": "@daily"}):
        body = {"name": "job", "image": "veo/busybox", "schedule": "* * * * *", **extra}
        if "task" in extra:
            body.pop("schedule")
        svc = Service.model_validate(body)
        again = load_service(dump_service(svc))
        assert again == svc and again.spec_hash() == svc.spec_hash()
