"""A one-line description of the machine a benchmark ran on, for RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{datetime.date.today().isoformat()} · {os.cpu_count()} cores ({cpu}) · jax {jax.__version__} on {devices}"
