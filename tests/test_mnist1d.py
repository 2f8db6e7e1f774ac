"""`ep.load_mnist1d`: the benchmark's standard split, shapes and labels, generated deterministically."""

import random

import numpy as np
import pytest

from edgeprune.data import load_mnist1d


@pytest.fixture(scope="module")
def standard():
    return load_mnist1d()


def test_standard_split_and_shapes(standard):
    (x, y), (xt, yt) = standard
    assert x.shape == (4000, 40, 1) and xt.shape == (1000, 40, 1)  # (N, 40, 1) for Conv1D
    assert y.shape == (4000,) and yt.shape == (1000,)
    assert x.dtype == np.float32 and xt.dtype == np.float32
    assert y.dtype == np.int32 and yt.dtype == np.int32
    assert np.isfinite(x).all() and np.isfinite(xt).all()
    # mnist1d standardizes the whole set
    everything = np.concatenate([x, xt])
    assert abs(float(everything.mean())) < 0.01 and abs(float(everything.std()) - 1) < 0.01


def test_labels_are_the_ten_digits_balanced(standard):
    (_, y), (_, yt) = standard
    per_class = np.bincount(np.concatenate([y, yt]), minlength=10)
    assert per_class.tolist() == [500] * 10  # num_samples // 10 of each digit
    train = np.bincount(y, minlength=10)
    assert len(train) == 10 and train.min() >= 350 and train.max() <= 450


def test_deterministic_and_seeded():
    (x1, y1), (xt1, yt1) = load_mnist1d(num_samples=500)
    (x2, y2), (xt2, yt2) = load_mnist1d(num_samples=500)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(xt1, xt2) and np.array_equal(yt1, yt2)
    (x3, y3), _ = load_mnist1d(num_samples=500, seed=7)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (400, 40, 1) and x3.shape == (400, 40, 1)


def test_settings_pass_through():
    (x, _), (xt, _) = load_mnist1d(num_samples=200, train_split=0.5, final_seq_length=24)
    assert x.shape == (100, 24, 1) and xt.shape == (100, 24, 1)
    with pytest.raises(TypeError, match="unknown setting.*url"):
        load_mnist1d(num_samples=200, url="https://example.invalid/data.pkl")
    with pytest.raises(ValueError, match="train_split"):
        load_mnist1d(num_samples=200, train_split=1.0)


def test_caller_random_state_is_restored():
    np.random.seed(123)
    random.seed(123)
    expected = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    load_mnist1d(num_samples=100)  # mnist1d reseeds the global generators with 42
    assert (np.random.rand(), random.random()) == expected


def test_exported_at_the_top_level():
    import edgeprune as ep

    assert ep.load_mnist1d is load_mnist1d and "load_mnist1d" in ep.__all__


def test_missing_package_names_the_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install mnist1d"):
        load_mnist1d()
