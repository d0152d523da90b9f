"""Scheduled tasks and service discovery on real Ray nodes and engines.

Tasks: a run per tick with its exit code, duration and log lines on the completed/failed event,
history pruned on the engines, timeout, ``veo run``, and a Scheduler killed (kill -9) while runs
exist: no tick starts twice. Discovery: each node's DNS (in its NodeAgent) answers a real DNS
client — dnspython's resolver and ``dig`` — while instances start, turn unhealthy and go away."""

from __future__ import annotations

import shutil
import subprocess
import time

import dns.resolver
import pytest
from ray_world import Faults, containers_of, wait_for

from veo.core.calendar import run_tick
from veo.core.models import EventKind, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(300)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 1 & wait $!; done"]


@pytest.fixture
def faults(world) -> Faults:
    return Faults(world)


def task(name: str, command: list[str], **kw) -> Service:
    return Service(name=name, image="veo/busybox", command=command, network_mode="none",
                   stop_grace_period=1, **{"schedule": "0 0 1 1 *", **kw})


def task_view(world, name: str) -> dict:
    return next(t for t in world.client.tasks() if t["name"] == name)


def finished_events(world, name: str) -> list:
    return [e for e in world.client.events() if e.service == name
            and e.kind in (EventKind.completed, EventKind.failed)]


# ---- tasks -----------------------------------------------------------------------------------------


def test_a_run_reports_exit_code_duration_and_logs_and_history_is_pruned(world, names):
    name = names("job")
    world.client.add_service(task(name, ["sh", "-c", "echo hello from the run; sleep 1; exit 3"],
                                  history={"succeeded": 1, "failed": 1}))
    first = world.client.run_task(name)
    ev = wait_for(lambda: finished_events(world, name), 60, what="the run to end")[0]
    assert ev.kind is EventKind.failed and ev.exit_code == 3
    assert ev.duration is not None and ev.duration >= 1.0
    assert "hello from the run" in ev.logs
    view = task_view(world, name)
    assert view["last_run"]["state"] == "failed" and view["last_run"]["exit_code"] == 3
    assert view["words"] == "At 00:00 on January 1"
    # a second failed run: history keeps one failed run, the first one's container goes
    time.sleep(1.1)  # a manual run is named by its second
    second = world.client.run_task(name)
    assert second["tick"] != first["tick"]
    wait_for(lambda: len(finished_events(world, name)) >= 2, 60, what="the second run to end")

    def pruned():
        cs = containers_of(world, [name])
        return len(cs) == 1 and run_tick(int(cs[0].labels["veo.instance"]))[0] == second["tick"]

    wait_for(pruned, 30, what="the first run's container to be removed")
    # runs show in veo ps like any instance
    assert [i.instance for i in world.instances(name)] == [int(second["instances"][0].split("#")[1])]


def test_timeout_stops_a_run_and_counts_it_failed(world, names):
    name = names("slow")
    world.client.add_service(task(name, LOOP, timeout="2s"))
    world.client.run_task(name)
    ev = wait_for(lambda: finished_events(world, name), 60, what="the run to be stopped")[0]
    assert ev.kind is EventKind.failed and "timed out after 2 s" in ev.reason
    assert not any(c.running for c in containers_of(world, [name]))


def test_a_task_runs_on_schedule_and_a_killed_scheduler_never_starts_a_tick_twice(world, names, faults):
    name = names("tick")
    world.client.add_service(task(name, ["sh", "-c", "echo tick; sleep 2"], schedule="* * * * *",
                                  overlap="allow", history={"succeeded": 5, "failed": 5}))
    started = lambda: [e for e in world.client.events()  # noqa: E731
                       if e.service == name and e.kind is EventKind.started]
    first = wait_for(started, 90, what="the first scheduled run")[0]
    tick, _ = run_tick(first.instance)
    assert tick % 60 == 0 and abs(first.time - tick) < 30  # on the minute it was due

    def engine_view() -> list[tuple[str, str]]:
        """(container id, StartedAt) of every container of that tick, from the engines."""
        out = []
        for c in containers_of(world, [name]):
            if int(c.labels["veo.instance"]) == first.instance:
                out.append((c.id, world.runtime(c.labels["veo.node"]).inspect(c.id).started_at))
        return out

    before = wait_for(lambda: (v := engine_view()) and all(s for _, s in v) and v, 30,
                      what="the run's container")
    faults.kill_actor("scheduler")  # while the run is active or just finished
    wait_for(lambda: task_view(world, name)["last_run"], 60, what="the run's result after the kill")
    time.sleep(3)  # several control-loop steps of the restarted Scheduler
    # the same one container, started once: the restarted Scheduler did not start the tick again
    assert engine_view() == before and len(before) == 1
    # events persist across the restart: the tick's start is there once, from before the kill
    assert [e.instance for e in started()].count(first.instance) == 1
    view = task_view(world, name)
    assert tick in [r["tick"] for r in view["runs"]] and view["next_run"] is not None


# ---- discovery -------------------------------------------------------------------------------------


def dns_of(world) -> dict[str, tuple[str, int]]:
    out = {}
    for n in world.client.nodes():
        if n.alive and n.dns:
            host, _, port = n.dns.rpartition(":")
            out[n.name] = (host, int(port))
    return out


def ask(where: tuple[str, int], name: str, rtype: str = "A") -> list[str] | None:
    """The answer's records as text; None for NXDOMAIN."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime, r.cache = [where[0]], where[1], 3, None
    try:
        return sorted(x.to_text() for x in r.resolve(name, rtype))
    except dns.resolver.NXDOMAIN:
        return None
    except dns.resolver.NoAnswer:
        return []


def test_every_node_serves_dns_and_answers_follow_health_and_removal(world, names):
    name = names("db")
    svc = Service(name=name, image="veo/busybox", command=LOOP, network_mode="host", instances=2,
                  ports=[{"target": 5432, "name": "pg"}], stop_grace_period=1, on_unhealthy="leave",
                  healthcheck={"test": ["test", "-f", "/tmp/ok"], "interval": "300ms",
                               "timeout": "1s", "retries": 1})
    world.client.add_service(svc)
    servers = wait_for(lambda: len(dns_of(world)) == 3 and dns_of(world), 60, what="3 DNS servers")
    assert len(set(servers.values())) == 3  # simulated nodes share an address: distinct ports
    short, full = f"{name}.veo", f"{name}.veo.veo"
    insts = world.wait_running(name, 2, pred=lambda r: all(i.health.value == "healthy" for i in r))
    for where in servers.values():  # every node answers for the whole cluster
        assert wait_for(lambda: ask(where, full) == ["127.0.0.1"], 10, what="A on every node")
        srv = ask(where, f"_pg._tcp.{full}", "SRV")
        assert srv == sorted(f"0 10 5432 {i.instance}.{full}." for i in insts)
    where = servers[insts[0].node]
    assert ask(where, f"nope-{name}.veo") is None  # NXDOMAIN
    if shutil.which("dig"):
        out = subprocess.run(["dig", "@" + where[0], "-p", str(where[1]), "+short", "+tcp", short],
                             capture_output=True, text=True, timeout=15).stdout
        assert out.split() == ["127.0.0.1"]
    # unhealthy: that instance leaves its names at once, the other stays
    victim = insts[0]
    code, _ = world.runtime(victim.node).exec(victim.container_id, ["rm", "/tmp/ok"])
    assert code == 0
    seen = wait_for(lambda: ask(where, f"{victim.instance}.{full}") == [] and time.time(), 10,
                    what="the unhealthy instance to leave")
    ev = next(e for e in world.client.events() if e.service == name and e.instance == victim.instance
              and e.kind is EventKind.unhealthy)
    print(f"DNS followed the unhealthy event after {seen - ev.time:.2f} s (polled)")
    assert ask(where, f"_pg._tcp.{full}", "SRV") == [f"0 10 5432 {insts[1].instance}.{full}."]
    # removed: the names of a service that is gone are NXDOMAIN
    world.remove(name)
    wait_for(lambda: ask(where, full) is None, 10, what="the removed service to be NXDOMAIN")
    assert world.client.resolve(name)["known"] is False


def test_resolve_and_nodes_show_discovery(world, names):
    name = names("web")
    world.client.add_service(Service(name=name, image="veo/busybox", command=LOOP,
                                     network_mode="host", ports=[80], stop_grace_period=1))
    world.wait_running(name)
    view = wait_for(lambda: (v := world.client.resolve(name))["addresses"] and v, 20,
                    what="the instance to be served")
    assert view["addresses"] == ["127.0.0.1"] and view["srv"][0]["port"] == 80
    assert view["names"] == [f"{name.lower()}.veo.veo", f"{name.lower()}.veo"]
    assert all(v for v in view["dns"].values())


def test_cli_tasks_run_resolve_and_nodes_dns(world, names):
    import json

    from typer.testing import CliRunner

    from veo.cli.app import app

    runner = CliRunner()

    def veo(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, [*args, "--address", world.cluster.address])
        assert result.exit_code == code, result.output
        return result.output

    name = names("clitask")
    world.client.add_service(task(name, ["sh", "-c", "echo from cli"], schedule="@hourly"))
    tasks = [t for t in json.loads(veo("tasks", "--json")) if t["name"] == name]
    assert tasks[0]["words"] == "At the start of every hour" and tasks[0]["next_run"].endswith(":00:00Z")
    started = json.loads(veo("run", name, "--json"))
    wait_for(lambda: finished_events(world, name), 60, what="the CLI's run to end")
    assert name in veo("tasks")  # the table
    ps = [r for r in json.loads(veo("ps", "--json")) if r["service"] == name]
    assert [f"{r['service']}#{r['instance']}" for r in ps] == started["instances"]
    nodes = json.loads(veo("nodes", "--json"))
    assert all(n["dns"] and n["dns"].count(":") == 1 for n in nodes if n["alive"])
    veo("resolve", f"nope{name}", code=1)
    assert json.loads(veo("resolve", name, "--json"))["known"] is True
