"""The policy-server client: numpy, msgpack and websockets only, never JAX, so that it installs on a
robot computer or in another simulator's environment (`pip install clients/python`, distribution
`robopolicy-client`, which ships this folder and nothing else of robopolicy)."""

from robopolicy.client.episode_log import EpisodeLog, EpisodeLogError, LoggedRun, read_episode_log
from robopolicy.client.policy_client import TOKEN_ENV, PolicyClient, ServerError
from robopolicy.client.wire import WireError, packb, unpackb

__all__ = [
    "TOKEN_ENV",
    "EpisodeLog",
    "EpisodeLogError",
    "LoggedRun",
    "PolicyClient",
    "ServerError",
    "WireError",
    "packb",
    "read_episode_log",
    "unpackb",
]
