"""JAX's persistent compilation cache, on by default for every command.

A first training step at the `diffusion_policy` preset compiles for minutes on a CPU, and every
notebook, evaluation worker and sweep unit would compile the same programs again. With the cache,
compiled executables are kept on disk and a later process with the same program, jax version and
devices loads them instead (results are unchanged: only the compiled code is stored).

The cache lives in `ROBOPOLICY_COMPILE_CACHE` if set (a folder or a bucket URL, or `off`), else in the
user cache folder (`$XDG_CACHE_HOME/robopolicy/jax`, by default `~/.cache/robopolicy/jax`). It is set
through JAX's own environment variables, so that worker processes, `robopolicy launch`'s processes
and Ray tasks started from here use it too. Every program is cached, however quickly it compiled:
the many small ones of a model's initialisation add up to seconds of every start.
"""

from __future__ import annotations

import os
import sys

CACHE_ENV = "ROBOPOLICY_COMPILE_CACHE"
OFF = "off"
# JAX's own settings, read from the environment when jax is imported.
JAX_CACHE_DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
JAX_MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
JAX_MIN_ENTRY_SIZE_ENV = "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"


def default_cache_dir() -> str:
    """The user cache folder for compiled programs."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "robopolicy", "jax")


def cache_dir() -> str | None:
    """Where compiled programs are kept: JAX's setting if one is made, else `ROBOPOLICY_COMPILE_CACHE`,
    else the user cache folder; None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV, "")
    if chosen == OFF:
        return None
    return os.environ.get(JAX_CACHE_DIR_ENV) or chosen or default_cache_dir()


def enable_compile_cache(enabled: bool = True) -> str | None:
    """Turn the cache on (or off) for this process and the processes it starts; returns its folder.

    Call it before jax compiles anything; when jax is already imported, its config is updated too.
    """
    if not enabled:
        os.environ[CACHE_ENV] = OFF
        os.environ.pop(JAX_CACHE_DIR_ENV, None)
    folder = cache_dir()
    if folder is not None:
        os.environ[JAX_CACHE_DIR_ENV] = folder
        os.environ.setdefault(JAX_MIN_COMPILE_TIME_ENV, "0")
        os.environ.setdefault(JAX_MIN_ENTRY_SIZE_ENV, "0")
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_compilation_cache_dir", folder)
        if folder is not None:
            jax.config.update(
                "jax_persistent_cache_min_compile_time_secs", float(os.environ[JAX_MIN_COMPILE_TIME_ENV])
            )
            jax.config.update(
                "jax_persistent_cache_min_entry_size_bytes", int(os.environ[JAX_MIN_ENTRY_SIZE_ENV])
            )
    return folder
