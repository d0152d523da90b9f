"""Supervision decisions, pure: a member of a unit died -> which instances stop, restart or end.

Vocabulary from Erlang/OTP supervisors:

* policy ``one_for_one``      - only the dead member is restarted;
* policy ``one_kills_all``    - every member is stopped (reverse order) and started again (declared
                                order); OTP's one_for_all;
* policy ``master_kills_all`` - the master dying acts like one_kills_all, a slave dying like
                                one_for_one.
* A member whose own restart policy says "do not restart" (``restart: never``, or ``on-failure`` with
  exit code 0) ends alone - completed on exit 0, failed otherwise - like an OTP *temporary* child:
  the other members are left running.
* ``restart_count: N`` allows exactly N restarts of that member, then it fails; when it fails,
  policies that kill all stop the whole unit and fail it with it (a group is one unit).
* The restart *budget* (OTP intensity/period) is per unit: more than ``budget_restarts`` restarts in
  ``budget_period`` seconds stops the whole unit and marks it failed, so a crash loop cannot storm the
  node.
* Restarts back off: the first is immediate, the second waits ``backoff_initial``, then the delay
  doubles (``backoff_factor``) up to ``backoff_max``; a member that ran for ``backoff_max`` seconds or longer
  before dying starts the back-off over (its restart *count* never resets).

Nothing here imports ray or docker; the GroupSupervisor actor holds the state and calls ``decide``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from veo.core.models import GroupPolicy, GroupRole, RestartPolicy, Service, Settings
from veo.core.names import instance_key


@dataclass(frozen=True, slots=True)
class Member:
    """What supervision needs to know of one member of a unit."""

    key: str  # instance key, e.g. "web#0"
    service: str
    role: GroupRole | None = None
    restart: RestartPolicy = RestartPolicy.restart
    restart_on_success: bool = True
    restart_count: int | None = None  # None or 0: unlimited

    @classmethod
    def of(cls, svc: Service, instance: int) -> Member:
        return cls(
            key=instance_key(svc.name, instance),
            service=svc.name,
            role=svc.group_role,
            restart=svc.restart,
            restart_on_success=svc.restart_on_success,
            restart_count=svc.restart_count,
        )


@dataclass(frozen=True, slots=True)
class Death:
    """A member stopped without veo asking it to."""

    key: str
    exit_code: int
    ran_for: float = 0.0  # seconds between its start and its death
    reason: str = ""  # "exited", "oom", "unhealthy", ...
    force_restart: bool = False  # health action 'restart' restarts even a 'never' member


@dataclass
class Decision:
    """What to do. Keys are instance keys; orders are the orders to act in."""

    restart: list[str] = field(default_factory=list)  # start order (declared, master first)
    stop: list[str] = field(default_factory=list)  # stop order (reverse declared)
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason
    delay: float = 0.0
    reason: str = ""
    # the unit's budget window after this decision (restart times): the agent keeps it and hands
    # it back, so a restarted GroupSupervisor rebuilds the window instead of starting afresh
    window: list[float] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (self.restart or self.stop or self.completed or self.failed)


@dataclass
class UnitState:
    """Supervision memory of one unit (a group copy, or one ungrouped instance)."""

    restarts: dict[str, int] = field(default_factory=dict)  # total restarts per member, never reset
    quick_failures: dict[str, int] = field(default_factory=dict)  # for back-off; resets
    window: deque[float] = field(default_factory=deque)  # times of restarts, for the budget


def backoff_delay(quick_failures: int, settings: Settings) -> float:
    """Delay before the next restart after ``quick_failures`` consecutive quick deaths.

    The first restart is immediate: a member that ran well and died once is most likely to run
    again, and the budget already bounds a storm. Docker's restart manager waits 100 ms there;
    veo waits from the second quick death on (``backoff_initial``, then x ``backoff_factor``)."""
    if quick_failures <= 0:
        return 0.0
    delay = settings.backoff_initial * settings.backoff_factor ** (quick_failures - 1)
    return min(settings.backoff_max, delay)


def wants_restart(member: Member, death: Death) -> bool:
    """The member's own policy, ignoring counts: should this death be followed by a restart?"""
    if death.force_restart:
        return True
    if member.restart is RestartPolicy.never:
        return False
    return death.exit_code != 0 or member.restart_on_success


def _end_alone(member: Member, death: Death) -> Decision:
    if death.exit_code == 0 and not death.force_restart:
        return Decision(completed=[member.key], reason="exited with code 0")
    reason = death.reason or f"exited with code {death.exit_code}"
    return Decision(failed={member.key: reason}, reason=reason)


def _kills_all(policy: GroupPolicy, dead: Member, members: list[Member]) -> bool:
    if len(members) < 2 or policy is GroupPolicy.one_for_one:
        return False
    if policy is GroupPolicy.one_kills_all:
        return True
    return dead.role is GroupRole.master


def _fail_unit(members: list[Member], dead: Member, reason: str, kills_all: bool) -> Decision:
    if not kills_all:
        return Decision(failed={dead.key: reason}, reason=reason)
    others = [m.key for m in reversed(members) if m.key != dead.key]
    failed = {m.key: reason if m.key == dead.key else f"group failed: {reason}" for m in members}
    return Decision(stop=others, failed=failed, reason=reason)


def decide(
    death: Death,
    members: list[Member],
    policy: GroupPolicy,
    state: UnitState,
    settings: Settings,
    now: float,
) -> Decision:
    """Decide what follows ``death`` in a unit whose members are ``members`` (declared order).

    Mutates ``state`` (counts, budget window) to record the restarts it decides, so that the caller
    persists one object. Members already ended (completed/failed) should not be passed in.
    """
    by_key = {m.key: m for m in members}
    dead = by_key.get(death.key)
    if dead is None:
        return Decision(reason=f"{death.key} is not supervised here")
    if not wants_restart(dead, death):
        return _end_alone(dead, death)
    kills_all = _kills_all(policy, dead, members)
    count = state.restarts.get(dead.key, 0)
    if dead.restart_count and count >= dead.restart_count and not death.force_restart:
        reason = f"restart_count {dead.restart_count} reached (last exit code {death.exit_code})"
        return _fail_unit(members, dead, reason, kills_all)
    _expire(state.window, now, settings.budget_period)
    if len(state.window) >= settings.budget_restarts:
        reason = (
            f"restart budget exhausted: more than {settings.budget_restarts} restarts "
            f"in {settings.budget_period:g}s"
        )
        return _fail_unit(members, dead, reason, kills_all=len(members) > 1)
    return _restart(death, dead, members, kills_all, state, settings, now)


def _restart(
    death: Death,
    dead: Member,
    members: list[Member],
    kills_all: bool,
    state: UnitState,
    settings: Settings,
    now: float,
) -> Decision:
    quick = 0 if death.ran_for >= settings.backoff_max else state.quick_failures.get(dead.key, 0)
    delay = backoff_delay(quick, settings)
    state.quick_failures[dead.key] = quick + 1
    state.window.append(now)
    restart = [m.key for m in members] if kills_all else [dead.key]
    for key in restart:
        state.restarts[key] = state.restarts.get(key, 0) + 1
    stop = [m.key for m in reversed(members) if m.key != dead.key] if kills_all else []
    what = "the whole group" if kills_all else "it"
    reason = f"{death.reason or f'exited with code {death.exit_code}'}; restarting {what}"
    return Decision(restart=restart, stop=stop, delay=delay, reason=reason)


def merge_window(state: UnitState, kept: list[float] | tuple[float, ...]) -> None:
    """Fold restart times kept elsewhere (by the agent) into ``state``'s budget window: the union,
    in time order. Times are the supervisor's own clock values handed back unchanged, so one
    restart known on both sides counts once."""
    if kept:
        state.window = deque(sorted(set(state.window) | set(kept)))


def _expire(window: deque[float], now: float, period: float) -> None:
    while window and now - window[0] > period:
        window.popleft()
