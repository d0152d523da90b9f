"""Issue 14 on real processes: a real ``veo serve`` (token on) in front of the session's real
Scheduler, with a few services running, takes GET /api/containers at 200 requests a second for
30 s from a generator process: no 5xx, no connection error, every answer a valid list showing the
services running. The figures (achieved rate, latency, the control loop's step time quiet vs
loaded, CPU) are printed here and are ``make bench``'s (``--only api_load``); no timing is
asserted."""

from __future__ import annotations

import pytest

from bench import rest_live
from bench.rest_live import LOOP

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(420)]


def test_rest_at_200_per_second_on_a_real_server_and_scheduler(world, names):
    services = [names("load") for _ in range(3)]
    for name in services:
        world.client.add_service({"name": name, "image": "veo/busybox", "command": LOOP,
                                  "network_mode": "none", "memory": "16m", "instances": 2,
                                  "stop_grace_period": 1})
    for name in services:
        world.wait_running(name, 2, timeout=90)
    expect = {f"{name}#{i}" for name in services for i in range(2)}

    res = rest_live.measure(world.client, world.cluster.address, expect, rate=200, seconds=30,
                            idle=15)
    print("\n" + rest_live.report(res))

    rest = res["rest"]
    assert rest["requests"] == 6000
    assert rest["statuses"] == {"200": 6000}, rest  # no 5xx, no 4xx: the token was taken
    assert rest["errors"] == 0, rest["error_samples"]  # no connection error, no timeout
    assert rest["invalid"] == 0, rest["invalid_samples"]  # every body a list, all running
    assert res["served"]["copy"] > 0  # the real Scheduler's change counter let it keep copies
    # the loop kept stepping through the load, and loop_stats(since) counted only those steps
    quiet, loaded = res["windows"]["quiet"]["steps"], res["windows"]["loaded"]["steps"]
    assert quiet["count"] > 0 and loaded["count"] > 0
    assert loaded["total"] - loaded["count"] >= quiet["total"]


def test_a_kept_copy_follows_the_real_schedulers_counter(live, world, names):
    """With copies that never expire by age, only the Scheduler's change counter can refresh
    them: a container killed behind veo's back shows restarted once the Scheduler shows it and
    the server has heard the counter the Scheduler had then."""
    import httpx

    from ray_world import wait_for

    listing = live.app.state.veo.listing
    listing.max_age = 3600.0
    try:
        api = httpx.Client(base_url=live.url, timeout=30)
        name = names("fresh")
        world.client.add_service({"name": name, "image": "veo/busybox", "command": LOOP,
                                  "network_mode": "none", "memory": "16m",
                                  "stop_grace_period": 1})
        old = world.wait_running(name, 1, timeout=60)[0]
        wait_for(lambda: listing.version is not None, 30, what="the server to follow the counter")
        row = wait_for(lambda: _row(api, name, 0), 30, what="the copy to show it running")
        world.runtime(row["node"]).kill(old.container_id)
        new = wait_for(lambda: [i for i in world.client.containers(name) if i.restarts >= 1
                                and i.status.value == "running"], 60, what="the restart")[0]
        version = world.client.containers_version()
        wait_for(lambda: listing.version is not None and listing.version >= version, 30,
                 what="the server to hear the counter")
        rows = api.get("/api/containers", params={"service": name}).json()
        assert [(r["id"], r["status"], r["restarts"]) for r in rows] == \
            [(new.container_id, "running", new.restarts)]
    finally:
        listing.max_age = 1.0


def _row(api, name: str, restarts: int):
    rows = api.get("/api/containers", params={"service": name}).json()
    ok = rows and rows[0]["status"] == "running" and rows[0]["restarts"] == restarts
    return rows[0] if ok else None
