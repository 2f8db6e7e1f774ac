"""MobileNetV2 (224x224, random weights) with 50% of its channels removed, against dense: LiteRT
latency, 1 thread, float32 and int8, measured interleaved in one run.

    python benchmarks/structured_latency.py [--runs 200] [--round_to 8] [--output results.json]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from device_bench.fileio import atomic_write  # noqa: E402
from edgeprune import export_tflite  # noqa: E402
from edgeprune.structured import prune_channels, shrink, shrink_report  # noqa: E402
from litert_latency import interleaved_latency  # noqa: E402

SIZE = 224


def representative_images(count=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, SIZE, SIZE, 3)).astype("float32")


def to_tflite(model, int8):
    """Float32, or full-integer int8 with int8 input and output, through edgeprune's exporter."""
    if not int8:
        return export_tflite(model)
    return export_tflite(model, quantize="int8", representative_data=representative_images(),
                         int8_io=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--round_to", type=int, default=8,
                        help="kept channel counts are multiples of this (SIMD width)")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    zeroed = prune_channels(dense, args.sparsity, round_to=args.round_to)
    small = shrink(zeroed)
    report = shrink_report(zeroed, small)
    models = {"dense float32": to_tflite(dense, False), "pruned float32": to_tflite(small, False),
              "dense int8": to_tflite(dense, True), "pruned int8": to_tflite(small, True)}
    latency = interleaved_latency(models, args.runs)
    print(f"MobileNetV2 {SIZE}x{SIZE}, {args.sparsity:.0%} of channels removed "
          f"(round_to={args.round_to}), "
          f"LiteRT 1 thread, {args.runs} interleaved runs")
    params, macs = report.total("params"), report.total("macs")
    print(f"params {params[0]:,} -> {params[1]:,}; MACs {macs[0]:,} -> {macs[1]:,} "
          f"({macs[0] / macs[1]:.2f}x fewer)")
    print("| model | size (KB) | median (ms) | min (ms) | speedup vs dense float32 (median of "
          "interleaved pairs) |")
    print("|---|---|---|---|---|")
    for name, flatbuffer in models.items():
        timing = latency[name]
        print(f"| {name} | {len(flatbuffer) / 1024:.0f} | {timing['p50_us'] / 1e3:.2f} | "
              f"{timing['min_us'] / 1e3:.2f} | {timing['speedup']:.2f}x |")
    if args.output:
        atomic_write(args.output, json.dumps({
            "latency": latency, "params": params, "macs": macs,
            "sizes": {k: len(v) for k, v in models.items()}}, indent=2))


if __name__ == "__main__":
    main()
