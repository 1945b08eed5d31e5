"""The policy side of a server: one `ActionSelector` slot per connection, and the step that answers
the requests of several connections with one batched policy call.

Semantics (docs/deploy.md): each request is the observation of the client's current control step.
A connection's first request, one with `reset`, and one whose instruction differs from its
episode's, start a new episode. Before the new observation is used, the server accounts for what the
client did since its previous reply: the actions named by `executed_actions`, or else all the
actions of that reply. The first of them ran at the previous request's step; each further one is a
step the server did not see, whose observation is taken to be the previous one (exact for a policy
that sees one frame, To = 1; a client that sends every step's observation, as `robopolicy eval` does,
gets exactly the in-process behaviour for any policy). Then the selector acts: the reply's actions are
this step's action followed by those it would execute next without a new observation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float

from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.serve.requests import BadRequest, Request
from robopolicy.train.loaded_policy import LoadedPolicy


@dataclass
class Session:
    """One connection's episode: its selector slot and what the server sent it last."""

    slot: int
    started: bool = False
    instruction: str | None = None
    step: int = 0  # the episode step of the next request
    sent: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))


@dataclass(frozen=True)
class Reply:
    """The answer to one request: actions [m, action_dim] (unnormalized, this step's first), the
    episode step of actions[0], and whether this request sampled a new plan."""

    actions: Float[np.ndarray, "m a"]
    step: int
    planned: bool


class Sessions:
    """Up to `max_clients` sessions over one selector; `step` answers one request of each of several.

    Not thread-safe: one thread (the server's inference thread) calls `step`.
    """

    def __init__(
        self, policy: LoadedPolicy, execution: ExecutionSettings, max_clients: int, seed: int = 0
    ) -> None:
        self.policy = policy
        # A call computes only as many rows as clients ask at once (rounded up to a power of two).
        self.selector = ActionSelector(policy, max_clients, execution, seed=seed, rows="powers_of_two")
        self._free = list(range(max_clients))

    def open(self) -> Session | None:
        """A session on a free slot; None when every slot is taken."""
        return Session(self._free.pop(0)) if self._free else None

    def close(self, session: Session) -> None:
        self.selector.release(session.slot)
        self._free.append(session.slot)
        self._free.sort()

    def warm_up(self) -> float:
        """Compile the policy call for every batch size it can have, with blank observations; the
        seconds it took."""
        cfg = self.policy.config
        blank = {c: np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8) for c in cfg.cameras}
        blank["state"] = np.zeros(cfg.state_dim, np.float32)
        sizes = sorted({self.selector.batch_rows(n) for n in range(1, self.selector.num_slots + 1)})
        t0 = time.perf_counter()
        for size in sizes:
            self.step([(Session(slot), Request(blank, None, True, None, None)) for slot in range(size)])
        for slot in range(self.selector.num_slots):
            self.selector.release(slot)
        return time.perf_counter() - t0

    def step(self, requests: list[tuple[Session, Request]]) -> list[Reply | BadRequest]:
        """Answer one request of each session (distinct sessions), with at most one policy call. A
        request that does not fit its session's state gets a `BadRequest` and changes nothing."""
        sel = self.selector
        results: list[Reply | BadRequest | None] = [None] * len(requests)
        acting: list[int] = []
        for n, (session, request) in enumerate(requests):
            try:
                self._before(session, request)
            except BadRequest as e:
                results[n] = e
                continue
            acting.append(n)
        if acting:
            cfg = self.policy.config
            active = np.zeros(sel.num_slots, bool)
            obs = {
                **{
                    c: np.zeros((sel.num_slots, cfg.image_size, cfg.image_size, 3), np.uint8)
                    for c in cfg.cameras
                },
                "state": np.zeros((sel.num_slots, cfg.state_dim), np.float32),
            }
            for n in acting:
                session, request = requests[n]
                active[session.slot] = True
                for key, value in request.obs.items():
                    obs[key][session.slot] = value
            try:
                actions, seconds = sel.act(obs, active)
            except Exception:
                for n in acting:  # their state is unknown now: each starts again at its next request
                    requests[n][0].started = False
                raise
            for n in acting:
                session = requests[n][0]
                session.sent = np.concatenate([actions[session.slot][None], sel.ahead(session.slot)])
                results[n] = Reply(session.sent, session.step, bool(seconds[session.slot] > 0))
                session.step += 1
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _before(self, session: Session, request: Request) -> None:
        """Start the session's episode or account for the actions executed since its last reply."""
        sel = self.selector
        changed = request.instruction is not None and request.instruction != session.instruction
        if not session.started or request.reset or changed:
            sel.reset(session.slot, request.seed, request.instruction)
            session.started, session.step, session.instruction = True, 0, request.instruction
            session.sent = np.zeros((0, self.policy.config.action_dim), np.float32)
            return
        if request.seed is not None:
            raise BadRequest("'seed' is only read when an episode starts (with 'reset')")
        executed = request.executed_actions if request.executed_actions is not None else session.sent
        if len(executed) > len(session.sent):
            raise BadRequest(
                f"'executed_actions' holds {len(executed)} actions; the previous reply sent {len(session.sent)}"
            )
        sel.record_executed(session.slot, executed)
        session.step += len(executed) - 1
