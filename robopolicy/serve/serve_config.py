"""Configuration of `robopolicy serve`."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.eval.execution import ExecutionSettings


@dataclass(frozen=True)
class ServeConfig:
    """Serve a trained policy over websocket + msgpack, compatible with openpi's `openpi-client`.

    Attributes:
        policy: a training run folder, its `checkpoints/` folder, one step folder, or an inference
            bundle written by `robopolicy export`.
        host: the address to listen on; the default accepts local connections only. Another address
            (0.0.0.0: every interface) should come with a token.
        port: the port; 0 picks a free one (printed when the server is ready).
        obs_mapping: which request keys hold the cameras, state and instruction: "robopolicy" (the
            env's own keys), "openpi_libero" (openpi's LIBERO example client), another name from
            `datasets/obs_mappings/` or $ROBOPOLICY_OBS_MAPPING_PATH, or a TOML file (see docs/deploy.md).
        token: a shared secret clients must send as `Authorization: Api-Key TOKEN`; empty reads
            $ROBOPOLICY_TOKEN (which keeps it out of the process list); neither: no token needed.
        max_clients: connections served at once, each with its own episode state; requests that
            arrive together are answered with one batched policy call (of as many rows as requests,
            rounded up to a power of two: each such size compiles when the server starts).
        max_message_mb: the largest request accepted, in MiB; a larger one closes its connection
            (websocket close code 1009) and the server goes on.
        max_image_side: the largest image side accepted, in pixels.
        request_timeout_s: a request not answered within this many seconds gets an error reply, and its
            connection's next request starts a new episode.
        seed: the sampling seed of an episode started without one.
        request_log: a JSON-lines file with one line per request (latency, batch size, outcome); empty:
            none. A latency summary (p50/p95/p99) is printed at shutdown either way.
        execution: how chunks become actions (mode, n_action_steps, temporal ensemble,
            self-verification); the episode settings (settle steps, step caps) are the client's.
    """

    policy: str = "runs/train"
    host: str = "127.0.0.1"
    port: int = 8000
    obs_mapping: str = "robopolicy"
    token: str = ""
    max_clients: int = 4
    max_message_mb: float = 32.0
    max_image_side: int = 2048
    request_timeout_s: float = 10.0
    seed: int = 0
    request_log: str = ""
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"ServeConfig.port must be in [0, 65535], got {self.port}")
        if self.max_clients < 1:
            raise ValueError(f"ServeConfig.max_clients must be >= 1, got {self.max_clients}")
        if self.max_message_mb <= 0 or self.max_image_side < 1 or self.request_timeout_s <= 0:
            raise ValueError(
                "ServeConfig: max_message_mb and request_timeout_s must be > 0, max_image_side >= 1"
            )
        episode = ("settle_steps", "max_steps", "suite_step_caps")
        if any(getattr(self.execution, f) != getattr(ExecutionSettings(), f) for f in episode):
            raise ValueError(
                "ServeConfig.execution: settle_steps, max_steps and suite_step_caps belong to the client's "
                "episodes (robopolicy eval --execution.…), not to the server"
            )
