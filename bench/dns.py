"""``python -m bench.dns``: veo's DNS server on loopback, figures only.

    zone build    - seconds to build the zone of N instances (done once per table version)
    queries/s     - sequential A queries over UDP from dnspython (one client, one core)
    update lag    - from ``update(table)`` to the first answer that shows it, as a client sees it

No Ray and no engine: the server runs in an asyncio loop in a thread, as in the NodeAgent.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import dns.message
import dns.query

from veo.adapters.dns import DnsConfig, DnsServer
from veo.core.discovery import InstanceRecord, PortRecord, Table, Zone


def table(version: int, services: int, per: int) -> Table:
    records = tuple(
        InstanceRecord(f"s{s}", i, f"n{i % 50}", f"10.{s % 250}.{i // 250}.{i % 250 + 1}",
                       ports=(PortRecord(80, 8000 + i, "tcp", "http"),))
        for s in range(services) for i in range(per))
    return Table("bench", version, frozenset(f"s{s}" for s in range(services)), records)


def run(quick: bool = False) -> dict:
    services, per = (200, 5) if quick else (2000, 5)
    big = table(1, services, per)
    t0 = time.perf_counter()
    Zone(big)
    build = time.perf_counter() - t0

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = DnsServer(DnsConfig(ttl=0), big)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        q = dns.message.make_query("s1.bench.veo", "A")
        n = 300 if quick else 2000
        t0 = time.perf_counter()
        for _ in range(n):
            dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
        qps = n / (time.perf_counter() - t0)
        lags = []
        for v in range(2, 12 if quick else 32):
            small = Table("bench", v, frozenset({"web"}),
                          (InstanceRecord("web", 0, "n0", f"10.9.0.{v}"),))
            t0 = time.perf_counter()
            loop.call_soon_threadsafe(server.update, small)
            while True:
                r = dns.query.udp(dns.message.make_query("web.bench.veo", "A"), "127.0.0.1",
                                  port=server.port, timeout=2)
                if r.answer and r.answer[0][0].address == f"10.9.0.{v}":
                    break
            lags.append(time.perf_counter() - t0)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    return {"instances": services * per, "zone_build_s": build, "queries_per_s": qps,
            "update_lag_median_ms": statistics.median(lags) * 1000,
            "update_lag_max_ms": max(lags) * 1000}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    res = run(quick=p.parse_args().quick)
    print(f"zone of {res['instances']:,} instances built in {res['zone_build_s']:.3f} s")
    print(f"{res['queries_per_s']:,.0f} A queries/s over UDP (one sequential client)")
    print(f"update -> answer: median {res['update_lag_median_ms']:.2f} ms, "
          f"max {res['update_lag_max_ms']:.2f} ms (in-process update; the Scheduler's push adds "
          "one control-loop step)")


if __name__ == "__main__":
    main()
