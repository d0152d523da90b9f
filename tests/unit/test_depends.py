"""depends_on: who waits for whom (veo.core.depends), and the load-time checks."""

from __future__ import annotations

import pytest

from veo.core.config import parse_spec
from veo.core.depends import held_back, show_held
from veo.core.errors import SpecError
from veo.core.models import Instance, InstanceStatus, Service
from veo.core.placement import NodeState
from veo.core.reconcile import Result
from veo.core.records import Health

S, R, C, F, P = (InstanceStatus.starting, InstanceStatus.running, InstanceStatus.completed,
                 InstanceStatus.failed, InstanceStatus.pending)


def services(**deps) -> dict[str, Service]:
    out = {"db": Service(name="db", image="x", healthcheck="true"),
           "init": Service(name="init", image="x", restart="no")}
    for name, dep in deps.items():
        out[name] = Service(name=name, image="x", depends_on=dep)
    return out


def view(service: str, status, health=Health.none, exit_code=None, n=0) -> Instance:
    return Instance(service=service, instance=n, status=status, health=health, exit_code=exit_code)


CASES = [
    # (depends_on of web, views of its dependencies, expected reason or None)
    (["db"], [], "waiting for db to start"),
    (["db"], [view("db", S)], "waiting for db to start"),
    (["db"], [view("db", R)], None),
    ({"db": {"condition": "service_healthy"}}, [view("db", R, Health.starting)],
     "waiting for db to be healthy"),
    ({"db": {"condition": "service_healthy"}}, [view("db", R, Health.healthy)], None),
    ({"db": {"condition": "service_healthy"}},
     [view("db", R, Health.healthy), view("db", R, Health.unhealthy, n=1)],
     "waiting for db to be healthy"),
    ({"init": {"condition": "service_completed_successfully"}}, [view("init", R)],
     "waiting for init to complete successfully"),
    ({"init": {"condition": "service_completed_successfully"}}, [view("init", C, exit_code=0)], None),
    ({"init": {"condition": "service_completed_successfully"}}, [view("init", C, exit_code=3)],
     "waiting for init, which exited with an error"),
    (["db"], [view("db", F)], "waiting for db, which failed"),
    (["absent"], [], "waiting for absent, which is not in the cluster"),
    ({"absent": {"required": False}}, [], None),
    (["db", "init"], [view("db", R), view("init", P)], "waiting for init to start"),
]


@pytest.mark.parametrize(("deps", "views", "reason"), CASES)
def test_held_back(deps, views, reason) -> None:
    assert held_back(services(web=deps), placed={"db", "init"}, views=views) == (
        {"web": reason} if reason else {})


def test_a_placed_service_is_never_held() -> None:
    assert held_back(services(web=["db"]), placed={"web"}, views=[]) == {}


def test_a_group_waits_as_one_and_members_do_not_wait_for_each_other() -> None:
    svcs = {"db": Service(name="db", image="x"),
            "app": Service(name="app", image="x", group="g", depends_on=["db", "side"]),
            "side": Service(name="side", image="x", group="g")}
    assert held_back(svcs, placed={"db"}, views=[]) == {
        "app": "waiting for db to start", "side": "app is waiting for db to start"}
    assert held_back(svcs, placed={"db"}, views=[view("db", R)]) == {}


def test_held_services_show_as_pending_units() -> None:
    svcs = services(web=["db"])
    svcs["web"] = svcs["web"].model_copy(update={"instances": 2})
    result = Result(slots={})
    show_held(result, svcs, {"web": "waiting for db to start"},
              [NodeState(name="n1", role=None, host="h", alive=True, cordoned=False, cpus=1,
                         memory=2**30, disk=0)])
    assert result.pending == {"web#0": "waiting for db to start", "web#1": "waiting for db to start"}
    assert result.unit_members == {"web#0": ("web#0",), "web#1": ("web#1",)}


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "compose.yml", env={})
    return [str(p) for p in info.value.problems]


def test_load_time_checks() -> None:
    assert problems("""\
services:
  web: {image: x, depends_on: [nope, web]}
  api: {image: x, depends_on: {db: {condition: service_healthy}}}
  db: {image: x, depends_on: [api]}
  opt: {image: x, depends_on: {gone: {required: false}}}
""") == [
        "compose.yml:2:32: services.web.depends_on.0: no service 'nope' in this file (write "
        "required: false if it may be absent)",
        "compose.yml:2:38: services.web.depends_on.1: a service cannot depend on itself",
        "compose.yml:3:19: services.api.depends_on: services depend on each other in a circle: "
        "api -> db -> api",
        "compose.yml:3:32: services.api.depends_on.db: service_healthy needs a healthcheck on db, "
        "which has none",
    ]


def test_restart_true_is_a_warning_and_long_form_loads() -> None:
    result = parse_spec("""\
services:
  web: {image: x, depends_on: {db: {condition: service_healthy, restart: true}}}
  db: {image: x, healthcheck: {test: "true"}}
""", "compose.yml", env={})
    dep = result.spec.services["web"].depends_on["db"]
    assert (dep.condition, dep.required, dep.restart) == ("service_healthy", True, True)
    assert [str(w) for w in result.warnings] == [
        "compose.yml:2:65: warning: services.web.depends_on.db.restart: ignored: veo does not "
        "restart web when db restarts"]
