"""``python -m veo.node.boot ADDRESS``: make sure the veo Scheduler runs on the Ray cluster at
ADDRESS, then exit. The head's node process runs it in a child each time its Ray node comes up, so
the node process itself never becomes a Ray driver (a driver would hang with a partition)."""

from __future__ import annotations

import sys


def main() -> int:
    from veo.deploy import start_scheduler

    start_scheduler(sys.argv[1])
    print(f"veo scheduler running on {sys.argv[1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
