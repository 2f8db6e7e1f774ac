"""MobileNetV2 (224x224, random weights) with 50% of its channels removed, against dense: LiteRT
latency, 1 thread, float32 and int8, measured interleaved in one run.

    python benchmarks/structured_latency.py [--runs 200] [--output results.json]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from device_bench.fileio import atomic_write  # noqa: E402
from edgeprune import export_tflite  # noqa: E402
from edgeprune.structured import prune_channels, shrink, shrink_report  # noqa: E402

SIZE = 224


def representative_data(count=16, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield [rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype("float32")]


def to_tflite(model, int8):
    """Float32, or full-integer int8 with int8 input and output, through edgeprune's exporter."""
    if not int8:
        return export_tflite(model)
    images = np.concatenate([batch[0] for batch in representative_data()])
    return export_tflite(model, quantize="int8", representative_data=images, int8_io=True)


def interpreter(flatbuffer, image):
    """A 1-thread LiteRT interpreter holding `image` (float in [-1, 1]) as its input."""
    runner = Interpreter(model_content=flatbuffer, num_threads=1)
    runner.allocate_tensors()
    detail = runner.get_input_details()[0]
    if detail["dtype"] == np.int8:
        scale, zero_point = detail["quantization"]
        image = np.clip(np.round(image / scale + zero_point), -128, 127)
    # Random rather than zero input: an all-zero image is a degenerate, unrealistic workload.
    runner.set_tensor(detail["index"], image.astype(detail["dtype"]))
    return runner


def interleaved_timings(runners, runs, warmup=5):
    """Seconds per invoke of each runner, timing them in turn so drift hits all alike."""
    for runner in runners.values():
        for _ in range(warmup):
            runner.invoke()
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.invoke()
            times[name].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    zeroed = prune_channels(dense, args.sparsity, round_to=8)
    small = shrink(zeroed)
    report = shrink_report(zeroed, small)
    models = {"dense float32": to_tflite(dense, False), "pruned float32": to_tflite(small, False),
              "dense int8": to_tflite(dense, True), "pruned int8": to_tflite(small, True)}
    image = next(representative_data(seed=1))[0]
    runners = {name: interpreter(flatbuffer, image) for name, flatbuffer in models.items()}
    times = interleaved_timings(runners, args.runs)
    # On a shared machine a long invoke is preempted more often than a short one, which inflates
    # the median ratio; the minimum is the least disturbed run. Both are printed.
    medians = {name: float(np.median(t)) for name, t in times.items()}
    minimums = {name: float(np.min(t)) for name, t in times.items()}
    print(f"MobileNetV2 {SIZE}x{SIZE}, {args.sparsity:.0%} of channels removed (round_to=8), "
          f"LiteRT 1 thread, {args.runs} interleaved runs")
    params, macs = report.total("params"), report.total("macs")
    print(f"params {params[0]:,} -> {params[1]:,}; MACs {macs[0]:,} -> {macs[1]:,} "
          f"({macs[0] / macs[1]:.2f}x fewer)")
    print("| model | size (KB) | median (ms) | min (ms) | speedup vs dense float32, median | "
          "speedup, min |")
    print("|---|---|---|---|---|---|")
    for name, flatbuffer in models.items():
        print(f"| {name} | {len(flatbuffer) / 1024:.0f} | {medians[name] * 1e3:.2f} | "
              f"{minimums[name] * 1e3:.2f} | {medians['dense float32'] / medians[name]:.2f}x | "
              f"{minimums['dense float32'] / minimums[name]:.2f}x |")
    if args.output:
        atomic_write(args.output, json.dumps({
            "medians_s": medians, "minimums_s": minimums, "params": params, "macs": macs,
            "sizes": {k: len(v) for k, v in models.items()}}, indent=2))


if __name__ == "__main__":
    main()
