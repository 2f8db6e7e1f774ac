"""Interleaved LiteRT latency of several in-memory .tflite models, through device_bench."""

import os
import tempfile

import device_bench


def interleaved_latency(models, num_runs, num_threads=1, **target_options):
    """`{name: {"p50_us", "min_us", "speedup"}}` for `models` (`{name: flatbuffer bytes}`).

    device_bench times the models in turn on random inputs; `speedup` is the first model's
    latency over this one's, the median over the interleaved pairs. `target_options` go to the
    local target (e.g. `python`).
    """
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, flatbuffer in enumerate(models.values()):
            paths.append(os.path.join(folder, f"model_{index}.tflite"))
            with open(paths[-1], "wb") as f:
                f.write(flatbuffer)
        result = device_bench.benchmark(paths, num_threads=num_threads, num_runs=num_runs,
                                        min_secs=0, **target_options)
    ratios = [1.0] + [c.ratio.median for c in result.comparisons]
    return {name: {"p50_us": model.latency.p50_us, "min_us": model.latency.min_us,
                   "speedup": 1.0 / ratio}
            for name, model, ratio in zip(models, result.models, ratios)}
