"""robopolicy: visuomotor robot policies from demonstrations, in JAX."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robopolicy.xla_cpu import apply_cpu_flags

# Before any robopolicy module imports jax, so that JAX's CPU client starts with them (#21).
apply_cpu_flags()

if TYPE_CHECKING:
    from pathlib import Path

    from robopolicy.train.loaded_policy import LoadedPolicy

__version__ = "0.1.0"


def load_policy(path: str | Path) -> LoadedPolicy:
    """A trained policy (EMA weights, config, statistics) from a run, checkpoint or exported bundle.

    Imported lazily, so `import robopolicy` stays light.
    """
    from robopolicy.train.loaded_policy import load_policy as _load

    return _load(path)
