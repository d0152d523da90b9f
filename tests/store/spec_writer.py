"""A process that writes a 500-service spec through the state store, over and over, for the crash
tests: ``python spec_writer.py STORE loop`` alternates two specs until killed, printing each
generation once its write returned; ``python spec_writer.py DIR full`` fills a small disk and
prints what it saw as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from veo.adapters.store import StoreFull, dump_service, open_store
from veo.core.models import Service

SERVICES = 500


def names(parity: int) -> list[str]:
    # the two specs differ in every row and in which services exist (one removed, one added)
    return [f"svc-{i:03d}" for i in range(parity, SERVICES + parity)]


def rows(parity: int, pad: int = 0) -> dict[str, dict]:
    out = {}
    for name in names(parity):
        svc = Service(name=name, image="veo/busybox", command=["sh", "-c", f"echo {name}"],
                      environment={"PARITY": str(parity), "PAD": "x" * pad})
        out[f"service/{name}"] = dump_service(svc)
    return out


def write_spec(store, generation: int, prepared: dict[int, dict], current: int | None) -> None:
    parity = generation % 2
    gone = [] if current is None else [f"service/{n}" for n in set(names(current)) - set(names(parity))]
    cluster = {"generation": generation, "parity": parity, "services": names(parity)}
    store.write({"spec/cluster": cluster, **prepared[parity]}, gone)


def loop(where: str) -> None:
    store = open_store(where)
    prepared = {0: rows(0), 1: rows(1)}
    cluster = store.get("spec/cluster")
    generation = cluster["generation"] if cluster else 0
    current = cluster["parity"] if cluster else None
    while True:
        generation += 1
        write_spec(store, generation, prepared, current)
        current = generation % 2
        print(generation, flush=True)


def full(directory: str) -> None:
    """On a tiny file system: a small spec fits, a large one does not and changes nothing."""
    store = open_store(str(Path(directory) / "state.db"))
    write_spec(store, 1, {1: rows(1)}, None)
    before = store.scan("")
    seen = {"before_rows": len(before)}
    try:
        write_spec(store, 2, {0: rows(0, pad=4000)}, 1)  # ~2 MB: more than the disk holds
        seen["error"] = None
    except StoreFull as e:
        seen["error"] = str(e)
        seen["http_status"] = e.http_status
    seen["unchanged"] = store.scan("") == before
    store.close()
    again = open_store(str(Path(directory) / "state.db"))
    seen["unchanged_after_reopen"] = again.scan("") == before
    again.put("spec/note", {"still": "writable"})  # a small write still goes through
    seen["small_write_after"] = again.get("spec/note") == {"still": "writable"}
    print(json.dumps(seen))


if __name__ == "__main__":
    {"loop": loop, "full": full}[sys.argv[2]](sys.argv[1])
