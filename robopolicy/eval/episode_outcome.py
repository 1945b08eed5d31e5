"""Why an evaluation episode failed, in words that fit any task of any suite."""

from __future__ import annotations

from typing import Any


def episode_failure_reason(info: dict[str, Any], success: bool) -> str | None:
    """The failure reason of an episode from its final info (None on success): the env's physics
    error, else a timeout with the reason the task gives (`info["failure_reason"]`, e.g. which goal
    term was unmet)."""
    if success:
        return None
    if info.get("sim_error"):
        return f"sim_error: {info['sim_error']}"
    return f"timeout: {info.get('failure_reason') or 'the goal was not reached'}"
