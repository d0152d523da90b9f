"""What a health change calls for. Pure."""

from __future__ import annotations


def action_for(old: str, new: str, on_unhealthy: str) -> str | None:
    """The action for a transition of Docker's health status, or None.

    Only the transition *into* unhealthy acts (Docker already waited ``retries`` failed probes);
    ``leave`` only reports. A container that stays unhealthy is not acted on again.
    """
    if new != "unhealthy" or old == "unhealthy":
        return None
    return None if on_unhealthy == "leave" else on_unhealthy
