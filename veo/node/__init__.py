"""The node-side process: ``veo node start`` on every machine, outside Ray.

It keeps the machine's Ray node up (restarting it when its raylet exits, so a machine that the
cluster declared dead during a partition rejoins), makes sure the veo Scheduler runs on the head,
and fences the machine's containers when it is cut off from the cluster for
``settings.disconnect.stop_after`` (see ``veo.node.fence``).
"""
