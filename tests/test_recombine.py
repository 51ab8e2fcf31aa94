import re

import numpy as np
import pytest

from fedmr_ray.algorithms import settings_of
from fedmr_ray.config import AlgorithmConfig, ConfigError
from fedmr_ray.recombine import draw_permutations, entry_groups, parse_granularity, recombine

NAMES = ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
         "bn.num_batches_tracked", "fc.weight", "fc.bias"]


def trained_models(k: int, names=NAMES):
    # model i, entry e holds the marker 100 * i + e, so every entry's origin is visible
    return [[np.full(3, 100.0 * i + e) for e in range(len(names))] for i in range(k)]


@pytest.mark.parametrize("granularity", ["tensor", "layer", "block:0.3", "block:1"])
def test_each_entry_comes_from_one_model_and_each_model_gives_it_once(granularity):
    k = 7
    models = trained_models(k)
    perms = draw_permutations(np.random.default_rng(0), k, entry_groups(NAMES, granularity))
    new = recombine(models, perms)
    assert len(new) == k and all(len(m) == len(NAMES) for m in new)
    for e in range(len(NAMES)):
        sources = [int(new[j][e][0] - e) // 100 for j in range(k)]
        assert sorted(sources) == list(range(k))  # every trained entry used exactly once
        for j in range(k):
            assert new[j][e] is models[sources[j]][e]  # taken whole, not copied or mixed
        mean_before = np.mean([m[e] for m in models], axis=0)
        assert np.array_equal(np.mean([m[e] for m in new], axis=0), mean_before)


def test_tensor_granularity_draws_a_permutation_per_entry():
    perms = draw_permutations(np.random.default_rng(1), 10, entry_groups(NAMES, "tensor"))
    assert perms.shape == (len(NAMES), 10)
    assert len({tuple(row) for row in perms}) == len(NAMES)


def test_layer_granularity_moves_a_module_together():
    groups = entry_groups(NAMES, "layer")
    assert groups.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2]
    perms = draw_permutations(np.random.default_rng(2), 10, groups)
    for module_rows in ([0, 1], [2, 3, 4, 5, 6], [7, 8]):
        assert all(np.array_equal(perms[module_rows[0]], perms[r]) for r in module_rows)
    assert len({tuple(perms[r]) for r in (0, 2, 7)}) == 3


def test_block_granularity_follows_the_reference_partition():
    # reference: reshuffle at entry i when i >= L * P * (blocks so far); L = 10, P = 0.3
    names = [f"m{i}.weight" for i in range(10)]
    assert entry_groups(names, "block:0.3").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert entry_groups(names, "block:1").tolist() == [0] * 10


@pytest.mark.parametrize("bad", ["row", "block", "block:0", "block:1.5", "block:x", ""])
def test_bad_granularity_is_refused_with_what_is_accepted(bad):
    assert parse_granularity(bad) is None
    with pytest.raises(ConfigError, match=f"--granularity '{re.escape(bad)}': must be tensor, layer, or block:P "
                                          "with 0 < P <= 1"):
        settings_of(AlgorithmConfig("fedmr", granularity=bad))
