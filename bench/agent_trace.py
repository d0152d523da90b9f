"""Where a restart's time goes inside the node agent: a probe the benchmarks attach to the live
agent actor (``__ray_call__``, nothing in the agent's code). It wraps the agent's engine-event
handler and its runtime's ``start``, and keeps, per container, when the agent saw the ``die``
event (against the engine's own timestamp of it) and when its ``start`` call began and returned.

That splits "die -> running again" into the agent's reaction (die event seen, decided, the start
call sent) and the engine's ``start`` call itself, which is what a busy engine makes slow.
"""

from __future__ import annotations

from bench.common import summarize


def _attach(agent) -> bool:
    """Runs inside the agent actor."""
    import time

    if getattr(agent, "_bench_trace", None) is not None:
        return True
    trace: list[tuple] = []
    agent._bench_trace = trace
    on_event, start = agent._on_engine_event, agent.runtime.start

    async def traced_event(ev):
        if ev.get("Action") == "die":
            trace.append(("die", ev.get("id", ""), time.time_ns(), int(ev.get("timeNano", 0))))
        return await on_event(ev)

    def traced_start(cid, *args, **kwargs):
        began = time.time_ns()
        try:
            return start(cid, *args, **kwargs)
        finally:
            trace.append(("start", cid, began, time.time_ns()))

    agent._on_engine_event, agent.runtime.start = traced_event, traced_start
    return True


def _take(agent) -> list[tuple]:
    out = list(agent._bench_trace or [])
    agent._bench_trace.clear()
    return out


class AgentTrace:
    def __init__(self, node: str) -> None:
        import ray

        from veo.core.names import ACTOR_NAMESPACE, actor_name

        self.agent = ray.get_actor(actor_name("agent", node), namespace=ACTOR_NAMESPACE)
        ray.get(self.agent.__ray_call__.remote(_attach))

    def take(self) -> list[tuple]:
        import ray

        return ray.get(self.agent.__ray_call__.remote(_take))


def split(trace: list[tuple], containers: list[str]) -> dict:
    """For each of ``containers`` (one restart each, in the trace's window): engine die -> agent
    saw it, agent saw it -> start call sent, the start call; summaries in seconds."""
    rows = {"seen_s": [], "react_s": [], "start_call_s": []}
    for cid in containers:
        dies = [t for t in trace if t[0] == "die" and t[1] == cid]
        if not dies:
            continue
        _, _, seen, engine_die = dies[-1]
        starts = [t for t in trace if t[0] == "start" and t[1] == cid and t[2] >= seen]
        if not starts:
            continue
        _, _, began, returned = starts[0]
        rows["seen_s"].append((seen - engine_die) / 1e9)
        rows["react_s"].append((began - seen) / 1e9)
        rows["start_call_s"].append((returned - began) / 1e9)
    return {k: summarize(v) for k, v in rows.items()}
