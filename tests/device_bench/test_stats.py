import numpy as np
import pytest

from device_bench import results, stats
from device_bench.schema import ModelResult


def test_summarize_matches_numpy():
    samples = np.random.default_rng(1).gamma(5, 100, 1000)
    lat = stats.summarize(samples)
    assert lat.count == 1000
    assert lat.mean_us == pytest.approx(samples.mean())
    assert lat.std_us == pytest.approx(samples.std(ddof=1))
    assert lat.p99_us == pytest.approx(np.percentile(samples, 99))
    assert lat.min_us == samples.min() and lat.max_us == samples.max()


def test_summarize_without_samples_says_so():
    with pytest.raises(ValueError, match="no timing samples"):
        stats.summarize([])


def test_paired_ratio_cancels_shared_noise():
    rng = np.random.default_rng(2)
    machine_noise = rng.uniform(1, 5, 500)  # both models slowed by the same amount each round
    base = 100 * machine_noise
    ratio = stats.paired_ratio(list(base), list(1.2 * base))
    assert ratio.median == pytest.approx(1.2)
    assert ratio.p95 - ratio.p5 == pytest.approx(0, abs=1e-9)


def test_noise_warning_only_above_threshold():
    quiet = ModelResult("q.tflite", 1, latency=stats.summarize([100, 101, 99, 100]))
    noisy = ModelResult("n.tflite", 1, latency=stats.summarize([100, 300, 50, 100]))
    results.add_noise_warning(quiet)
    results.add_noise_warning(noisy)
    assert quiet.warnings == []
    assert "too noisy" in noisy.warnings[0] and "n.tflite" in noisy.warnings[0]
