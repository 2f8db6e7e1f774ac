"""MobileNetV2 (224x224, random weights) with 50% of its channels removed, against dense: LiteRT
latency, 1 thread, float32 and int8, measured interleaved in one run.

The same run also times MobileNetV2 with width multiplier 0.5, REFERENCE.md's stand-in for 50%
channel pruning, so its published ratios can be checked on the machine at hand.

    python benchmarks/structured_latency.py [--runs 200] [--round_to 8] [--output results.json]
    python benchmarks/structured_latency.py --by_segment    # where the time goes
    python benchmarks/structured_latency.py --by_segment Conv1_relu,block_1_expand_relu,...
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
from edgeprune.sparsity.wrapper import leaf_layers  # noqa: E402
from edgeprune.model.cost import layer_macs  # noqa: E402
from litert_latency import interleaved_latency  # noqa: E402

SIZE = 224
# MobileNetV2 layers after which --by_segment cuts the network by default.
SEGMENT_ENDS = ("block_2_add", "block_5_add", "block_9_add", "block_12_add", "block_15_add",
                "out_relu", "predictions")


def representative_images(count=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, SIZE, SIZE, 3)).astype("float32")


def to_tflite(model, int8):
    """Float32, or full-integer int8 with int8 input and output, through edgeprune's exporter."""
    if not int8:
        return export_tflite(model)
    return export_tflite(model, quantize="int8", representative_data=representative_images(),
                         int8_io=True)


def by_segment(variants, ends, runs):
    """Median latency of each stretch of the network, in µs: every variant is cut after each
    layer named in `ends`, the prefixes are timed interleaved, and a stretch takes the difference
    of two consecutive prefixes."""
    prefixes = {(name, end): to_tflite(keras.Model(model.input, model.get_layer(end).output), int8)
                for name, (model, int8) in variants.items() for end in ends}
    latency = interleaved_latency(prefixes, runs)
    columns = {name: np.diff([0.0] + [latency[name, end]["p50_us"] for end in ends])
               for name in variants}
    print("| stretch ending at | " + " | ".join(f"{name} (µs)" for name in variants)
          + " | pruned int8 speedup vs dense float32 |")
    print("|---|" + "---|" * (len(variants) + 1))
    for index, end in enumerate(ends):
        cells = [f"{columns[name][index]:.0f}" for name in variants]
        speedup = columns["dense float32"][index] / columns["pruned int8"][index]
        print(f"| {end} | " + " | ".join(cells) + f" | {speedup:.1f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--round_to", type=int, default=8,
                        help="kept channel counts are multiples of this (SIMD width)")
    parser.add_argument("--output", help="also write the figures as JSON here")
    parser.add_argument("--by_segment", nargs="?", const=",".join(SEGMENT_ENDS),
                        metavar="LAYER,...",
                        help="time the stretches of the network that end at these layers "
                             "instead of whole models (default: %(const)s)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    zeroed = prune_channels(dense, args.sparsity, round_to=args.round_to)
    small = shrink(zeroed)
    report = shrink_report(zeroed, small)
    half_width = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3),
                                                alpha=0.5)
    variants = {"dense float32": (dense, False), "pruned float32": (small, False),
                "dense int8": (dense, True), "pruned int8": (small, True),
                "width-0.5 float32": (half_width, False), "width-0.5 int8": (half_width, True)}
    if args.by_segment:
        return by_segment(variants, args.by_segment.split(","), args.runs)
    models = {name: to_tflite(model, int8) for name, (model, int8) in variants.items()}
    latency = interleaved_latency(models, args.runs)
    print(f"MobileNetV2 {SIZE}x{SIZE}, {args.sparsity:.0%} of channels removed "
          f"(round_to={args.round_to}), "
          f"LiteRT 1 thread, {args.runs} interleaved runs")
    params, macs = report.total("params"), report.total("macs")
    print(f"params {params[0]:,} -> {params[1]:,}; MACs {macs[0]:,} -> {macs[1]:,} "
          f"({macs[0] / macs[1]:.2f}x fewer)")
    half_macs = sum(layer_macs(layer) for layer in leaf_layers(half_width))
    print(f"width-0.5: params {half_width.count_params():,}; MACs {half_macs:,} "
          f"({macs[0] / half_macs:.2f}x fewer)")
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
