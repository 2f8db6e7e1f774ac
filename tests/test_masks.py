import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeprune.sparsity import masks


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_magnitude_mask_keeps_exactly_the_largest(rng):
    weight = rng.normal(size=(16, 10)).astype("float32")
    mask, threshold = masks.magnitude_mask(weight, 0.8)
    assert mask.sum() == masks.kept_count(weight.size, 0.8) == 32
    assert np.abs(weight[mask == 1]).min() >= np.abs(weight[mask == 0]).max()
    assert threshold == pytest.approx(np.abs(weight[mask == 1]).min())


def test_mask_keeps_at_least_one_weight(rng):
    mask, _ = masks.magnitude_mask(rng.normal(size=(3,)).astype("float32"), 0.99)
    assert mask.sum() == 1


@pytest.mark.parametrize("pooling", ["AVG", "MAX"])
def test_block_mask_on_a_conv_kernel(rng, pooling):
    weight = rng.normal(size=(3, 3, 5, 8)).astype("float32")  # 2-D view: (45, 8)
    mask, _ = masks.magnitude_mask(weight, 0.5, block_size=(1, 4), pooling=pooling)
    blocks = mask.reshape(45, 2, 4)
    # Every 1x4 block along the last axis is all kept or all pruned.
    assert np.all((blocks.min(axis=-1) == blocks.max(axis=-1)))
    assert blocks[..., 0].sum() == masks.kept_count(90, 0.5)


def test_block_mask_with_partial_edge_blocks(rng):
    weight = rng.normal(size=(7, 6)).astype("float32")
    mask, _ = masks.magnitude_mask(weight, 0.5, block_size=(2, 4), pooling="AVG")
    assert mask.shape == weight.shape
    assert 0 < mask.sum() < weight.size


@pytest.mark.parametrize("shape", [(12, 8), (3, 3, 16, 4), (5, 12, 6)])
def test_m_by_n_runs_along_tflite_input_channel_axis(rng, shape):
    weight = rng.normal(size=shape).astype("float32")
    mask, _ = masks.m_by_n_mask(weight, (2, 4))
    moved = np.moveaxis(mask, -2, -1)  # TFLite's innermost axis is Keras axis -2
    groups = moved.reshape(-1, 4)
    assert np.all(groups.sum(axis=-1) == 2)
    kept = np.moveaxis(np.abs(weight), -2, -1).reshape(-1, 4)
    for group_mask, group in zip(groups, kept):
        assert group[group_mask == 1].min() >= group[group_mask == 0].max()


def test_m_by_n_partial_group_is_never_sparser_than_m_over_n(rng):
    weight = rng.normal(size=(6, 3)).astype("float32")  # axis -2 has 6 = 4 + a partial 2
    mask, _ = masks.m_by_n_mask(weight, (2, 4))
    assert np.all(mask[4:].sum(axis=0) == 2)  # partial group of 2 keeps min(2, 4 - 2)
    assert np.all(mask[:4].sum(axis=0) == 2)


def test_global_ranking_prunes_the_small_layer_harder(rng):
    big = rng.uniform(1.0, 2.0, size=(20, 20)).astype("float32")
    small = rng.uniform(-0.01, 0.01, size=(20, 20)).astype("float32")
    (big_mask, _), (small_mask, _) = masks.global_magnitude_masks([big, small], 0.5)
    assert big_mask.sum() + small_mask.sum() == 400
    assert big_mask.sum() == 400 and small_mask.sum() == 0


def test_top_k_mask_keeps_the_first_of_tied_scores_and_ranks_nan_lowest():
    scores = np.array([3, 1, 2, 2, 2, 0, 2], np.float32)
    assert masks.top_k_mask(scores, 3).tolist() == [1, 0, 1, 1, 0, 0, 0]
    assert masks.top_k_mask(np.array([np.nan, 1, 2, 3], np.float32), 2).tolist() == [0, 0, 1, 1]


# Scores as pruning meets them: many exact zeros (pruned weights), ties, NaN, negatives.
SCORES = hnp.arrays(np.float32, st.integers(2, 200), elements=st.one_of(
    st.just(0.0), st.sampled_from([0.5, 1.0]), st.floats(-2, 2, width=32), st.just(np.nan)))


@given(SCORES, st.floats(0, 1))
def test_top_k_mask_equals_a_stable_sort(scores, fraction):
    k = max(1, min(scores.size, round(fraction * scores.size)))
    ranked = np.where(np.isnan(scores), -np.inf, scores)
    expected = np.zeros(scores.size, np.float32)
    expected[np.argsort(-ranked, kind="stable")[:k]] = 1  # ties: the first ones
    assert masks.top_k_mask(scores, k).tolist() == expected.tolist()


def test_top_k_of_a_kernel_that_is_mostly_zeros(rng):
    # At 80% exact zeros a plain np.partition took 565 ms for this kernel; the positives alone ~25.
    scores = np.abs(rng.normal(size=1_000_000)).astype("float32")
    scores[scores < np.quantile(scores, 0.8)] = 0
    mask = masks.top_k_mask(scores, 200_000)
    assert mask.sum() == 200_000 and scores[mask == 0].max() <= scores[mask == 1].min()
