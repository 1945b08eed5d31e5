import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.train.ema import ema_decay, ema_update
from robopolicy.train.optimizer import OptimizerConfig, clip_by_module_norm, learning_rate_schedule


def test_ema_decay_schedule_hand_computed():
    assert float(ema_decay(0)) == pytest.approx(0.0)
    # 1 − (1 + 15)^(−0.75) = 1 − 1/8
    assert float(ema_decay(15, power=0.75)) == pytest.approx(0.875)
    assert float(ema_decay(10**9, max_decay=0.999)) == pytest.approx(0.999)


def test_ema_update_hand_computed():
    out = ema_update({"w": jnp.asarray([1.0, 2.0])}, {"w": jnp.asarray([3.0, 6.0])}, 0.75)
    np.testing.assert_allclose(out["w"], [1.5, 3.0])


def test_warmup_cosine_schedule():
    sched = learning_rate_schedule(OptimizerConfig(learning_rate=1e-3, warmup_steps=10), total_steps=110)
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(5)) == pytest.approx(5e-4)
    assert float(sched(10)) == pytest.approx(1e-3)
    assert float(sched(60)) == pytest.approx(5e-4, rel=1e-4)  # half-way through the cosine
    assert float(sched(110)) == pytest.approx(0.0, abs=1e-9)


def test_optimizer_config_validates():
    with pytest.raises(ValueError, match="learning_rate"):
        OptimizerConfig(learning_rate=0.0)


def test_constant_schedule_with_and_without_warmup():
    flat = learning_rate_schedule(
        OptimizerConfig(learning_rate=1e-4, schedule="constant", warmup_steps=0), 50
    )
    assert [float(flat(s)) for s in (0, 1, 49)] == pytest.approx([1e-4] * 3)
    # Linear warm-up 0 → 4e-4 over 4 steps, then held: 0, 1e-4, 2e-4, 3e-4, 4e-4, 4e-4.
    warm = learning_rate_schedule(
        OptimizerConfig(learning_rate=4e-4, schedule="constant", warmup_steps=4), 50
    )
    assert [float(warm(s)) for s in range(6)] == pytest.approx([0.0, 1e-4, 2e-4, 3e-4, 4e-4, 4e-4])
    with pytest.raises(ValueError, match="schedule"):
        OptimizerConfig(schedule="linear")


def test_per_module_clipping_hand_computed():
    # Module a's gradient (3, 4) has norm 5: scaled to norm 1, (0.6, 0.8). Module b's norm 0.5 is under
    # the limit and stays; clipped globally (norm √25.25) it would have shrunk too.
    grads = {"a": {"w": jnp.asarray([3.0, 4.0])}, "b": {"w": jnp.asarray([0.3]), "v": jnp.asarray([0.4])}}
    clip = clip_by_module_norm(1.0)
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(clipped["a"]["w"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"]["w"], [0.3], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"]["v"], [0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="grad_clip"):
        OptimizerConfig(grad_clip="layer")
