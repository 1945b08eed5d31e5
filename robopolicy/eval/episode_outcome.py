"""Why an evaluation episode failed, in words that fit any task of any suite."""

from __future__ import annotations

from typing import Any

from robopolicy.eval.rollout import failure_reason


def episode_failure_reason(info: dict[str, Any], success: bool) -> str | None:
    """The failure reason of an episode from its final info (None on success).

    The cube_on_plate task keeps its detailed grasp/place reasons; other tasks use the reason their
    task spec gives (`info["failure_reason"]`, e.g. which predicate was unmet), as a timeout.
    """
    if success:
        return None
    if info.get("sim_error"):
        return f"sim_error: {info['sim_error']}"
    if "cube_on_plate" in info or not info.get("failure_reason"):
        return failure_reason(info, success)
    return f"timeout: {info['failure_reason']}"
