"""Reading one request of a policy server: wire bytes → a checked `Request`, or a `BadRequest` that
says, in one line, what is wrong (the server sends it back as an error reply).

A request is a map of the observation-mapping's keys (images, state, instruction) plus these control
keys, all optional:

- `reset` (bool): this observation starts a new episode (a connection's first request always does);
- `seed` (int in [0, 2**63)): with a new episode, its sampling seed;
- `executed_actions` (float [k, action_dim]): the actions the client executed since the previous
  reply, when that was not all of that reply's actions.

Other keys are ignored. Images must be uint8 [H, W, 3] with sides of at most `max_image_side` pixels;
they are resized to the policy's size with `robopolicy.data.image_resize.resize_with_pad`, as the
training pipeline does. The state must be a finite float (or integer) vector of the policy's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float

from robopolicy.client.wire import WireError, unpackb
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.obs_mapping import ObsMapping
from robopolicy.models.policy_config import PolicyConfig

CONTROL_KEYS = ("reset", "seed", "executed_actions")


class BadRequest(ValueError):
    """A request the server cannot use; the message names the key and the problem."""


@dataclass(frozen=True)
class Request:
    """A checked request: the observation in the policy's terms and the control keys.

    Attributes:
        obs: camera name → uint8 [image_size, image_size, 3], and "state" → float32 [state_dim].
        instruction: the language instruction, None when the request carries none.
        reset: whether this observation starts a new episode.
        seed: the new episode's sampling seed (None: the server's).
        executed_actions: float32 [k, action_dim] actions executed since the previous reply, or None.
    """

    obs: dict[str, np.ndarray]
    instruction: str | None
    reset: bool
    seed: int | None
    executed_actions: Float[np.ndarray, "k a"] | None


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def _image(key: str, value: Any, size: int, max_side: int) -> np.ndarray:
    if (
        not isinstance(value, np.ndarray)
        or value.dtype != np.uint8
        or value.ndim != 3
        or value.shape[-1] != 3
    ):
        raise BadRequest(f"{key!r} must be a uint8 image [H, W, 3], got {_describe(value)}")
    if min(value.shape[:2]) < 1 or max(value.shape[:2]) > max_side:
        raise BadRequest(
            f"{key!r}: image of {value.shape[0]}×{value.shape[1]} pixels; sides must be 1 to {max_side}"
        )
    return resize_with_pad(value, size, size)


def _floats(key: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """A finite float32 array of `shape` (None: any length) from a real-valued array."""
    ok = isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim == len(shape)
    if not ok or any(n is not None and n != m for n, m in zip(shape, value.shape, strict=True)):
        want = "[" + ", ".join("k" if n is None else str(n) for n in shape) + "]"
        raise BadRequest(f"{key!r} must be a float array {want}, got {_describe(value)}")
    out = value.astype(np.float32)
    if not np.isfinite(out).all():
        raise BadRequest(f"{key!r} holds NaN or infinite values")
    return out


def parse_request(message: bytes, mapping: ObsMapping, config: PolicyConfig, max_image_side: int) -> Request:
    """Decode and check one request for a policy of `config` whose keys `mapping` names."""
    try:
        request = unpackb(message)
    except WireError as e:
        raise BadRequest(str(e)) from None
    if not isinstance(request, dict):
        raise BadRequest(f"a request must be a map of observation keys, got {_describe(request)}")
    missing = [k for k in (*mapping.cameras, mapping.state) if k not in request]
    if missing:
        raise BadRequest(
            f"missing key(s) {', '.join(map(repr, missing))} (observation mapping '{mapping.name}' reads "
            f"{', '.join(map(repr, [*mapping.cameras, mapping.state]))})"
        )
    obs = {
        camera: _image(key, request[key], config.image_size, max_image_side)
        for key, camera in mapping.cameras.items()
    }
    obs["state"] = _floats(mapping.state, request[mapping.state], (config.state_dim,))
    instruction = request.get(mapping.instruction) if mapping.instruction else None
    if instruction is not None and not isinstance(instruction, str):
        raise BadRequest(f"{mapping.instruction!r} must be a string, got {_describe(instruction)}")
    reset = request.get("reset", False)
    if not isinstance(reset, (bool, np.bool_)):
        raise BadRequest(f"'reset' must be true or false, got {_describe(reset)}")
    seed = request.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise BadRequest(f"'seed' must be an integer, got {_describe(seed)}")
    if seed is not None and not 0 <= int(seed) < 2**63:
        raise BadRequest(f"'seed' must be in [0, 2**63), got {seed}")
    executed = request.get("executed_actions")
    if executed is not None:
        executed = _floats("executed_actions", executed, (None, config.action_dim))
        if len(executed) == 0:
            raise BadRequest("'executed_actions' must hold at least one action")
    return Request(obs, instruction, bool(reset), None if seed is None else int(seed), executed)
