"""A policy server running on a thread of the test process, for tests that talk to one."""

import asyncio
import threading
from pathlib import Path

import numpy as np

from robopolicy.serve.serve_config import ServeConfig
from robopolicy.serve.server import PolicyServer, load_server


class ServerThread:
    """`robopolicy serve` on a free local port, in a thread (stopped with `stop`, or as a context manager)."""

    def __init__(self, policy_dir: Path, **config) -> None:
        self.server: PolicyServer = load_server(ServeConfig(policy=str(policy_dir), port=0, **config))
        ready = threading.Event()

        def on_ready(uri: str) -> None:
            self.uri = uri
            ready.set()

        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.run(on_ready)), daemon=True)
        self._thread.start()
        assert ready.wait(120), "the policy server did not start"
        self.port = int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> dict:
        """Stop the server (once); its latency summary."""
        if self._thread.is_alive():
            self.server.stop()
            self._thread.join(30)
        assert not self._thread.is_alive()
        return self.server.latencies.summary()

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def observation(rng: np.random.Generator, size: int = 16, state_dim: int = 9) -> dict[str, np.ndarray]:
    """A random env observation: both cameras uint8 [size, size, 3] and the state."""
    return {
        "agentview": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "wrist": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "state": rng.normal(size=state_dim).astype(np.float32),
    }
