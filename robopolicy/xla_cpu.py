"""XLA:CPU options robopolicy sets before JAX starts its CPU backend.

jaxlib 0.10's XLA:CPU runs convolutions as YNNPACK fusions by default. On the `diffusion_policy`
train step (two ResNet-18 encoders) those run almost all on one thread (19 of 992 fused ops asked the
thread pool for help at batch 64) and cost more per frame as the batch grows, so training throughput
stayed flat from batch 8 to 64 (#21). XLA's own (Eigen) convolutions spread each convolution over
the cores and did the same work in less CPU time: the encoder's forward + backward on 128 frames
took 2.9 CPU-s instead of 4.1 (benchmarks/RESULTS.md). So convolutions go back to Eigen here; the
other YNNPACK fusions (reductions, elementwise) stay.

The option is added to `XLA_FLAGS` when `robopolicy` is imported, which is before JAX creates its
CPU client as long as nothing ran on a JAX device first. A `XLA_FLAGS` that already names the option
is left alone (`--xla_cpu_experimental_ynn_fusion_type=+individual_convolution` keeps YNNPACK's
convolutions). Only jaxlib versions known to have the option get it: XLA aborts on unknown flags.
Accelerator backends ignore CPU options.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from importlib.metadata import PackageNotFoundError, version

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
EIGEN_CONVOLUTIONS = f"{YNN_FUSION_FLAG}=-individual_convolution"
# jaxlib releases whose XLA has the flag (checked by hand; XLA aborts on flags it does not know).
JAXLIB_WITH_FLAG = ("0.10.2",)


def _jaxlib_version() -> str | None:
    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return None


def cpu_flags(current: str, jaxlib_version: str | None) -> str:
    """`XLA_FLAGS` with Eigen convolutions added, unless `current` already sets the YNNPACK fusion
    types or this jaxlib does not know the option."""
    if jaxlib_version not in JAXLIB_WITH_FLAG or YNN_FUSION_FLAG in current:
        return current
    return f"{current} {EIGEN_CONVOLUTIONS}".strip()


def apply_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the options in `environ` (this process and the processes it starts)."""
    flags = cpu_flags(environ.get("XLA_FLAGS", ""), _jaxlib_version())
    if flags:
        environ["XLA_FLAGS"] = flags
