"""The scripted expert of every task: the spec's goal terms, in order, become motion primitives.

On / OnFarther -> pick, place on; In -> pick, place in (a drawer too); Open / Close -> slide the drawer;
TurnOn / TurnOff -> press a button or slide a switch; Lifted -> pick and hold; AtStart -> pick, put back
where the episode started. A term already true when its turn comes is skipped (e.g. a switch already
off); a term still false after its motion (an object slipped) is tried again, up to `attempts` times.
The expert reads privileged state, including the cue choice of memory tasks.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import numpy as np

from robopolicy.sim import primitives as prim
from robopolicy.sim.env import TabletopEnv
from robopolicy.tasks.object_library import Role
from robopolicy.tasks.spec import GoalTerm

_STATE_CHANGES = ("Open", "Close", "TurnOn", "TurnOff")


class SpecExpert:
    """Call `reset()` after every `env.reset()`, then `act()` once per step."""

    def __init__(
        self, env: TabletopEnv, config: prim.PrimitiveConfig | None = None, attempts: int = 3
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self._env = env
        self._config = config or prim.PrimitiveConfig()
        self._attempts = attempts
        self.reset()

    @property
    def phase(self) -> int:
        """Index of the goal term being worked on (len(goal) once all are done)."""
        return self._term

    def reset(self) -> None:
        self._motion = prim.Motion(self._env, self._config)
        self._term = 0
        self._plan = self._script()

    def _script(self) -> Iterator[np.ndarray]:
        goal = self._motion.task.spec.goal
        for k, term in enumerate(goal):
            self._term = k
            if not term.once and term.predicate in _STATE_CHANGES and self._holds(term):
                continue
            for _ in range(self._attempts):
                yield from self._term_actions(term)
                if (yield from self._settled(term)):
                    break
        self._term = len(goal)
        while True:
            yield from prim.hold(self._motion, 1)

    def _holds(self, term: GoalTerm) -> bool:
        task, data = self._motion.task, self._env.data
        pads, pairs = task.contacts(data)
        return task.term_value(data, term, pads, pairs)

    def _settled(self, term: GoalTerm, steps: int = 8) -> Generator[np.ndarray, None, bool]:
        """Hold still until the term holds (True) or `steps` pass (False): objects need a moment to rest."""
        for _ in range(steps):
            if self._holds(term):
                return True
            yield from prim.hold(self._motion, 1)
        return self._holds(term)

    def _term_actions(self, term: GoalTerm) -> Iterator[np.ndarray]:
        m = self._motion
        args = [m.task.resolve(a) for a in term.args]
        p = term.predicate
        if p == "On":
            yield from prim.pick(m, args[0])
            yield from prim.place_on(m, args[0], args[1])
        elif p == "OnFarther":
            support = m.task.farther_support(args[0], args[1], args[2], self._env.data)
            yield from prim.pick(m, args[0])
            yield from prim.place_on(m, args[0], support)
        elif p == "In":
            yield from prim.pick(m, args[0])
            yield from prim.place_in(m, args[0], args[1])
        elif p == "AtStart":
            yield from prim.pick(m, args[0])
            yield from prim.place_back(m, args[0])
        elif p == "Lifted":
            yield from prim.lift_and_hold(m, args[0])
        elif p in ("Open", "Close") and m.kind(args[0]).role is Role.DOOR:
            yield from prim.swing_door(m, args[0], 1.0 if p == "Open" else 0.0)
        elif p in ("Open", "Close"):
            yield from prim.slide_drawer(m, args[0], 1.0 if p == "Open" else 0.0)
        elif m.kind(args[0]).role is Role.BUTTON:
            if p == "TurnOn":
                yield from prim.press(m, args[0])
        else:
            yield from prim.slide_switch(m, args[0], on=p == "TurnOn")

    def act(self) -> np.ndarray:
        """Next action, float32 (7,) in [-1, 1]."""
        return next(self._plan)
