"""robopolicy.xla_cpu: the XLA:CPU options set at import (Eigen convolutions, #21)."""

import os
import subprocess
import sys

from robopolicy.xla_cpu import EIGEN_CONVOLUTIONS, cpu_flags


def test_eigen_convolutions_are_added_to_other_flags():
    assert cpu_flags("", "0.10.2") == EIGEN_CONVOLUTIONS
    assert cpu_flags("--xla_backend_optimization_level=0", "0.10.2") == (
        f"--xla_backend_optimization_level=0 {EIGEN_CONVOLUTIONS}"
    )


def test_a_users_choice_and_unknown_jaxlib_are_left_alone():
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
    assert cpu_flags(own, "0.10.2") == own
    assert cpu_flags("", "0.99.0") == ""
    assert cpu_flags("", None) == ""


def test_importing_robopolicy_sets_them_before_jax_compiles():
    # A fresh process: the import sets XLA_FLAGS, and jax then starts with them (it would abort on an
    # option it does not know) and compiles a convolution.
    code = (
        "import robopolicy, os, jax, jax.numpy as jnp;"
        "x = jnp.ones((1, 8, 8, 3)); k = jnp.ones((3, 3, 3, 4));"
        "y = jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'));"
        "print(os.environ['XLA_FLAGS'], float(y.sum()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    flags, total = out.stdout.split()[:-1], float(out.stdout.split()[-1])
    assert EIGEN_CONVOLUTIONS in flags
    # Each output sums the 3×3 window's inputs (27 inside, fewer at the SAME-padded edges), 4 channels.
    assert total == 4 * 3 * (6 * 6 * 9 + 4 * 6 * 6 + 4 * 4)
