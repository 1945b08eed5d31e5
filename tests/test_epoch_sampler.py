import numpy as np

from robopolicy.data.epoch_sampler import EpochSampler


def test_epoch_sampler_is_a_pure_function_of_step():
    a, b = EpochSampler(10, 3, seed=7), EpochSampler(10, 3, seed=7)
    seq = [a.indices(s).tolist() for s in range(7)]
    assert [b.indices(s).tolist() for s in (6, 0, 3)] == [seq[6], seq[0], seq[3]]
    first_epoch = np.concatenate(seq[:3])
    assert len(set(first_epoch.tolist())) == 9  # one permutation per epoch, last partial batch dropped
    assert seq[3] != seq[0]  # the next epoch is reshuffled
