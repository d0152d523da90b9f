"""veo: run Docker containers across the nodes of a Ray cluster.

    import veo
    cluster = veo.connect()            # RAY_ADDRESS, or the local cluster `veo up` started
    cluster.apply("cluster.yml")
    for inst in cluster.containers():
        print(inst.service, inst.node, inst.status)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["connect", "Cluster", "__version__"]


def __getattr__(name: str):
    # lazy: `veo validate` and the pure core must not pay for importing ray
    if name in ("connect", "Cluster"):
        from veo import client

        return getattr(client, name)
    raise AttributeError(name)
