"""Latency statistics and paired ratios from raw timing samples (microseconds).

>>> summarize([100.0, 110.0, 90.0, 100.0]).p50_us
100.0
>>> round(paired_ratio([100.0, 200.0], [110.0, 220.0]).median, 2)
1.1
"""

import math

import numpy as np

from device_bench.schema import LatencyStats, Ratio

# Above this coefficient of variation single figures are not trustworthy (benchmark_model users
# commonly see 1-5% on a quiet machine); compare models interleaved or quiet the machine.
NOISY_CV = 0.10


def summarize(samples_us):
    """LatencyStats (count, min/max/mean/std, p50/p90/p99, coefficient of variation)."""
    values = np.asarray(samples_us, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timing samples: the run ended before the first timed inference")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
    return LatencyStats(count=int(values.size), min_us=float(values.min()),
                        max_us=float(values.max()), mean_us=mean, std_us=std,
                        p50_us=p50, p90_us=p90, p99_us=p99,
                        cv=std / mean if mean > 0 else math.nan)


def is_noisy(latency):
    return latency.cv is not None and latency.cv > NOISY_CV


def paired_ratio(baseline_us, other_us):
    """Ratio other/baseline from runs taken in the same rounds (median and 5-95% of pair ratios)."""
    pairs = min(len(baseline_us), len(other_us))
    ratios = np.asarray(other_us[:pairs], np.float64) / np.asarray(baseline_us[:pairs], np.float64)
    p5, median, p95 = (float(v) for v in np.percentile(ratios, [5, 50, 95]))
    return Ratio(pairs=pairs, median=median, p5=p5, p95=p95)
