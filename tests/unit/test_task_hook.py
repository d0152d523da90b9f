"""The Scheduler's task and discovery hooks (actors/task_hook.py, actors/discovery_hook.py) driven
through a fake Scheduler: a real store, a clock the test moves, slots and reports as the actor
has them. Restarting the Scheduler is making a new fake on the same store, as Ray does after a
kill -9: the state that survives is what the hooks persisted."""

from __future__ import annotations

import asyncio

from actors import discovery_hook, task_hook
from veo.adapters.store import MemoryStore
from veo.core.calendar import run_instance
from veo.core.desired import DesiredState
from veo.core.models import (AgentReport, Event, EventKind, Health, Instance, InstanceStatus,
                             Service, Settings)
from veo.core.names import instance_key
from veo.core.reconcile import Slot
from veo.core.views import NodeRec

T0 = 1_780_000_000 - 1_780_000_000 % 3600


class FakeScheduler:
    """The attributes the hooks read, nothing else: the desired state loaded from the store (as a
    restarted Scheduler does), its services and slots set by the test."""

    def __init__(self, store: MemoryStore, services: dict[str, Service], now: float):
        self.store, self.now = store, now
        self.state = DesiredState.load(store)
        self.state.cluster, self.state.services, self.state.settings = "prod", services, Settings()
        self.nodes = {"uno": NodeRec("uno", alive=True, host="10.0.0.1",
                                     report=AgentReport(node="uno", docker_host="x"))}
        self.recorded: list[Event] = []
        self.wake = asyncio.Event()
        self.sent: list[tuple[str, dict, dict]] = []  # (node, table, config) sent to agents

    # the test reads and writes these as the actor's state holds them
    @property
    def slots(self) -> dict[str, Slot]:
        return self.state.slots

    @slots.setter
    def slots(self, value: dict[str, Slot]) -> None:
        self.state.slots = value

    @property
    def services(self) -> dict[str, Service]:
        return self.state.services

    def clock(self) -> float:
        return self.now

    # the actor counts changes of its node records and of their reports; this fake, whose tests
    # replace records and reports by hand, derives the same from them
    @property
    def nodes_version(self) -> tuple:
        return tuple((r.name, r.alive, r.host) for r in self.nodes.values())

    @property
    def reports_version(self) -> tuple:
        return tuple(id(r.report) for r in self.nodes.values())

    def _record(self, events: list[Event]) -> None:
        """As the Scheduler: each event takes the next index of the desired state."""
        for ev in events:
            ev.index = self.state.next_index()
        self.recorded.extend(events)

    def _agent(self, node: str):
        sent = self.sent

        class Discovery:
            @staticmethod
            def remote(table: dict, config: dict) -> None:
                sent.append((node, table, config))

        return type("Agent", (), {"discovery": Discovery})()

    def place(self, runs: dict[str, list[int]]) -> None:
        """What reconcile does with the runs: a slot each (on the one node)."""
        for name, instances in runs.items():
            for i in instances:
                key = instance_key(name, i)
                self.slots.setdefault(key, Slot(key, name, i, key, "uno", 1,
                                                self.services[name].spec_hash()))


def reloaded(svc: Service) -> dict[str, Service]:
    """The services as a restarted Scheduler has them: read back from the store."""
    from veo.adapters.store import dump_service, load_service

    return {svc.name: load_service(dump_service(svc))}


def job(**kw) -> Service:
    return Service(name="job", image="veo/busybox", schedule="*/5 * * * *", **kw)


def test_a_killed_scheduler_never_starts_a_tick_twice_and_catches_up_once() -> None:
    store = MemoryStore()
    svc = job(starting_deadline="2m", overlap="allow")
    s1 = FakeScheduler(store, {"job": svc}, T0 + 1)
    assert task_hook.before_plan(s1) == {"job": []}  # new: owes nothing
    s1.now = T0 + 301
    runs = task_hook.before_plan(s1)
    assert runs == {"job": [run_instance(T0 + 300)]}
    s1.place(runs)
    # killed right after the plan was persisted, before anything was told to the agents
    s2 = FakeScheduler(store, reloaded(svc), T0 + 302)
    s2.slots = dict(s1.slots)  # the slots are persisted with the plan
    assert task_hook.before_plan(s2) == runs  # the same run, not a second one
    # down for an hour: at most one run, for the latest tick, the rest as one event
    s3 = FakeScheduler(store, reloaded(svc), T0 + 3600 + 30)
    s3.slots = dict(s1.slots)
    runs = task_hook.before_plan(s3)
    assert runs == {"job": [run_instance(T0 + 300), run_instance(T0 + 3600)]}
    assert [e.kind for e in s3.recorded] == [EventKind.skipped]
    assert s3.recorded[0].reason.startswith("10 tick(s) skipped (missed)")
    # down past the deadline: nothing starts, the missed ticks are one event
    s4 = FakeScheduler(store, reloaded(svc), T0 + 7200 + 150)
    s4.slots = dict(s1.slots)
    assert len(task_hook.before_plan(s4)["job"]) == 2
    assert s4.recorded[0].reason.startswith("12 tick(s) skipped (missed)")


def test_forbid_after_restart_sees_the_active_run() -> None:
    store = MemoryStore()
    svc = job()
    s1 = FakeScheduler(store, {"job": svc}, T0)
    task_hook.before_plan(s1)
    s1.now = T0 + 301
    s1.place(task_hook.before_plan(s1))
    s2 = FakeScheduler(store, reloaded(svc), T0 + 601)
    s2.slots = dict(s1.slots)
    assert task_hook.before_plan(s2) == {"job": [run_instance(T0 + 300)]}
    assert "overlap: forbid" in s2.recorded[0].reason


def test_finished_runs_report_results_and_are_pruned() -> None:
    store = MemoryStore()
    svc = job(history={"succeeded": 1, "failed": 0})
    s = FakeScheduler(store, {"job": svc}, T0)
    task_hook.before_plan(s)
    for k in (1, 2):
        s.now = T0 + 300 * k + 1
        s.place(task_hook.before_plan(s))
        key = instance_key("job", run_instance(T0 + 300 * k))
        s.slots[key] = Slot(**{**s.slots[key].to_json(), "outcome": "completed"})
        events = [Event(kind=EventKind.started, service="job", instance=run_instance(T0 + 300 * k),
                        time=s.now),
                  Event(kind=EventKind.exited, service="job", instance=run_instance(T0 + 300 * k),
                        exit_code=0, time=s.now + 2),
                  Event(kind=EventKind.completed, service="job", instance=run_instance(T0 + 300 * k),
                        time=s.now + 2)]
        done = asyncio.run(task_hook.enrich(s, events))[-1]
        assert done.exit_code == 0 and done.duration == 2.0
    s.now = T0 + 700
    assert task_hook.before_plan(s) == {"job": [run_instance(T0 + 600)]}  # the older one pruned
    view = task_hook.views(s)[0]
    assert view["last_run"]["state"] == "succeeded" and view["last_run"]["duration"] == 2.0
    assert view["words"] == "Every fifth minute of every hour" and view["next_run"].endswith(":15:00Z")


def test_a_finished_run_survives_a_restart_as_history() -> None:
    store = MemoryStore()
    svc = job()
    s1 = FakeScheduler(store, {"job": svc}, T0)
    task_hook.before_plan(s1)
    s1.now = T0 + 301
    s1.place(task_hook.before_plan(s1))
    key = instance_key("job", run_instance(T0 + 300))
    s1.slots[key] = Slot(**{**s1.slots[key].to_json(), "outcome": "completed"})
    s2 = FakeScheduler(store, reloaded(svc), T0 + 302)
    s2.slots = dict(s1.slots)
    assert task_hook.before_plan(s2) == {"job": [run_instance(T0 + 300)]}  # kept, not dropped


def test_trigger() -> None:
    s = FakeScheduler(MemoryStore(), {"job": job(), "web": Service(name="web", image="veo/httpd")}, T0 + 42)
    out = task_hook.trigger(s, "job")
    assert out["tick"] == T0 + 42 and s.wake.is_set()
    assert task_hook.before_plan(s) == {"job": [run_instance(T0 + 42)]}
    for bad, text in (("web", "not a task"), ("nope", "no service")):
        try:
            task_hook.trigger(s, bad)
        except Exception as e:  # noqa: BLE001 - the message is what is checked
            assert text in str(e)
        else:
            raise AssertionError("accepted")


def test_discovery_table_follows_reports_and_versions_only_on_change() -> None:
    web = Service(name="web", image="veo/httpd", ports=["8080:80"],
                  healthcheck={"test": "true"})
    s = FakeScheduler(MemoryStore(), {"web": web}, T0)
    s.slots = {"web#0": Slot("web#0", "web", 0, "web#0", "uno", 1, web.spec_hash())}
    s.nodes["uno"].report = AgentReport(node="uno", docker_host="x", instances=[
        Instance(service="web", instance=0, node="uno", status=InstanceStatus.running,
                 health=Health.starting)])
    t1 = discovery_hook.current(s)
    assert t1.records[0].served is False and t1.records[0].ports[0].published == 8080
    assert discovery_hook.current(s).version == t1.version  # nothing changed: same version
    s.nodes["uno"].report.instances[0] = s.nodes["uno"].report.instances[0].model_copy(
        update={"health": Health.healthy})
    s._record([Event(kind=EventKind.healthy, service="web", instance=0, node="uno")])
    t2 = discovery_hook.current(s)
    assert t2.version > t1.version and t2.records[0].served
    view = discovery_hook.lookup(s, "web")
    assert view["addresses"] == ["10.0.0.1"] and view["srv"][0]["port"] == 8080


def _web_scheduler() -> FakeScheduler:
    web = Service(name="web", image="veo/httpd", ports=["8080:80"], healthcheck={"test": "true"})
    s = FakeScheduler(MemoryStore(), {"web": web}, T0)
    s.slots = {"web#0": Slot("web#0", "web", 0, "web#0", "uno", 1, web.spec_hash())}
    s.nodes["uno"].report = AgentReport(node="uno", docker_host="x", instances=[
        Instance(service="web", instance=0, node="uno", status=InstanceStatus.running,
                 health=Health.starting)])
    return s


def _agent_applies(s: FakeScheduler) -> None:
    """The agent serves what it was sent, and its next report says so."""
    node, table, config = s.sent[-1]
    s.nodes[node].report = s.nodes[node].report.model_copy(
        update={"dns_version": table["version"], "dns_config": config})


def test_an_unchanged_step_neither_rebuilds_nor_pushes_the_discovery_table() -> None:
    s = _web_scheduler()
    discovery_hook.push(s)
    assert len(s.sent) == 1 and s.sent[0][1]["records"][0]["served"] is False
    _agent_applies(s)
    discovery_hook.push(s)  # a new report is a change: rebuilt (nothing new to send) ...
    discovery_hook.push(s)  # ... and once more the step after (reports may lag an event)
    builds = discovery_hook.cache(s).rebuilds.count
    for _ in range(5):  # steady state: steps go on, nothing changed (an agent whose report did
        s.now += 1       # not change answers None: the Scheduler keeps the report it holds)
        discovery_hook.push(s)
    assert discovery_hook.cache(s).rebuilds.count == builds and len(s.sent) == 1
    # a health change: the agent's report shows it and its event is recorded
    s.nodes["uno"].report.instances[0] = s.nodes["uno"].report.instances[0].model_copy(
        update={"health": Health.healthy})
    s._record([Event(kind=EventKind.healthy, service="web", instance=0, node="uno")])
    discovery_hook.push(s)
    assert discovery_hook.cache(s).rebuilds.count == builds + 1
    assert len(s.sent) == 2 and s.sent[1][1]["records"][0]["served"] is True
    assert s.sent[1][1]["version"] > s.sent[0][1]["version"]


def test_discovery_rebuilds_on_placement_and_event_but_versions_only_on_content() -> None:
    s = _web_scheduler()
    discovery_hook.push(s)
    _agent_applies(s)
    discovery_hook.push(s)
    c = discovery_hook.cache(s)
    builds, version = c.rebuilds.count, c.table.version
    # an event that changes nothing the table shows: rebuilt, same version, nothing sent
    s._record([Event(kind=EventKind.placed, service="web", instance=0, node="uno")])
    discovery_hook.push(s)
    assert c.rebuilds.count == builds + 1 and c.table.version == version and len(s.sent) == 1
    # placement moved on (new slots, no report yet for the new generation): the record goes
    web = s.services["web"]
    s.slots = {"web#0": Slot("web#0", "web", 0, "web#0", "uno", 2, web.spec_hash())}
    discovery_hook.push(s)
    assert c.table.records == () and len(s.sent) == 2


def test_a_lost_table_is_sent_again_only_after_resend() -> None:
    from veo.core.discovery import RESEND

    s = _web_scheduler()
    discovery_hook.push(s)
    s.now += RESEND / 2
    discovery_hook.push(s)  # the agent has not reported it yet: not sent twice at once
    assert len(s.sent) == 1
    s.now += RESEND
    discovery_hook.push(s)  # still not there: the message was lost, or the agent restarted
    assert len(s.sent) == 2 and s.sent[1][1] == s.sent[0][1]


def test_a_costly_discovery_rebuild_is_paced_but_not_lost() -> None:
    from veo.core.discovery import Rebuilds

    r = Rebuilds()
    assert r.due(("a",), now=0.0)
    r.built(0.5)  # a 100k-instance table: half a second
    assert not r.due(("b",), now=1.0)  # changed, but the last rebuild was 1 s ago (< 10 x 0.5 s)
    assert r.due(("b",), now=5.0)  # still due once the pace allows
    r.built(0.001)  # a small table follows every change
    assert r.due(("c",), now=5.0)


def test_discovery_rebuilds_under_churn_come_at_most_churn_rate_per_second() -> None:
    """A deploy changes the table with every start: a burst goes at once, beyond it at most
    CHURN_RATE rebuilds per second; a change not rebuilt yet stays due, a quiet table answers
    its next change at once again."""
    from veo.core.discovery import CHURN_BURST, CHURN_RATE, Rebuilds

    r = Rebuilds()
    r.built(0.001)
    now, done = 0.0, []
    for i in range(100):  # a change every 10 ms for 1 s
        if r.due((i,), now):
            done.append(now)
        now += 0.01
    assert CHURN_BURST <= len(done) <= CHURN_BURST + CHURN_RATE + 1
    assert r.due((99,), now + 1.0)  # the last change was not lost: due once the pace allows
    assert r.due((99,), now + 1.0)  # and once more, to settle (as for every change)
    assert r.due(("quiet",), now + 10.0)  # after a quiet spell a change goes at once
