"""device_bench's own cost, and how steady its interleaved comparisons are.

1. Harness overhead per inference: on a tiny model (one small Dense layer, where invoke() costs
   about a microsecond) the harness's per-inference figures are compared with a bare
   `for _ in range(n): invoke()` loop, in alternating blocks; the difference is expressed as a
   share of MobileNetV2's (224x224, float32, random weights) median latency. Target: < 5%.
2. Ratio spread: two identical MobileNetV2 files benchmarked together (interleaved A B B A ...),
   repeated; every repetition's median per-pair ratio should lie within 1 +- 3%. For contrast the
   same pair measured in separate, back-to-back runs (not interleaved).

    python benchmarks/device_bench_overhead.py [--repeats 10] [--num_runs 300]

TensorFlow is used only to build the two .tflite files.
"""

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import device_bench  # noqa: E402
from device_bench import runner  # noqa: E402


def build_models(folder):
    import keras
    import tensorflow as tf

    def convert(model, name):
        path = os.path.join(folder, name)
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its trace
            data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        with open(path, "wb") as f:
            f.write(data)
        return path

    keras.utils.set_random_seed(0)
    tiny = convert(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]), "tiny.tflite")
    mobilenet = convert(keras.applications.MobileNetV2(weights=None), "mobilenet_v2.tflite")
    twin = os.path.join(folder, "mobilenet_v2_copy.tflite")
    shutil.copyfile(mobilenet, twin)
    return tiny, mobilenet, twin


def harness_vs_bare(path, rounds, block):
    """Median over alternating blocks of (harness mean sample, harness loop cost, bare cost), us."""
    np_, litert = runner.import_dependencies()
    config = {**runner.DEFAULTS, "num_threads": 1, "num_runs": block, "min_secs": 0.0}
    model = runner.TimedModel(path, config, np_, litert, np_.random.default_rng(0))
    measured, loop, bare = [], [], []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        samples = runner.timed_runs([model], config, time.perf_counter_ns() + 10**11)[0]
        loop.append((time.perf_counter_ns() - start) / 1e3 / len(samples))
        measured.append(sum(samples) / len(samples))
        start = time.perf_counter_ns()
        for _ in range(block):
            model.invoke()
        bare.append((time.perf_counter_ns() - start) / 1e3 / block)
    return statistics.median(measured), statistics.median(loop), statistics.median(bare)


def spread_line(label, ratios):
    worst = max(abs(r - 1) for r in ratios)
    return f"{label} min {min(ratios):.4f} max {max(ratios):.4f} (largest |r-1| {worst:.2%})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--num_runs", type=int, default=300)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    try:
        tiny, mobilenet, twin = build_models(folder)
        settings = {"num_threads": 1, "num_runs": args.num_runs, "min_secs": 0.0,
                    "warmup_runs": 5, "warmup_min_secs": 0.0}

        mobile = device_bench.benchmark(mobilenet, **settings).models[0].latency
        measured, loop, bare = harness_vs_bare(tiny, rounds=20, block=20000)
        print("## 1. Harness overhead per inference (1 thread)")
        print(f"MobileNetV2 224 float32 median latency: {mobile.p50_us:.0f} us")
        print(f"tiny model, bare invoke() loop:          {bare:.3f} us per inference")
        print(f"tiny model, harness timed sample (mean): {measured:.3f} us "
              f"(+{measured - bare:.3f} us, {(measured - bare) / mobile.p50_us:.4%} of MobileNetV2)")
        print(f"tiny model, harness loop per inference:  {loop:.3f} us "
              f"(+{loop - bare:.3f} us, {(loop - bare) / mobile.p50_us:.4%} of MobileNetV2)")

        interleaved = [device_bench.benchmark([mobilenet, twin], **settings).comparisons[0].ratio
                       for _ in range(args.repeats)]
        separate = []
        for _ in range(args.repeats):
            a = device_bench.benchmark(mobilenet, **settings).models[0].latency.p50_us
            b = device_bench.benchmark(twin, **settings).models[0].latency.p50_us
            separate.append(b / a)
        medians = [r.median for r in interleaved]
        print(f"\n## 2. Two identical MobileNetV2 files, {args.repeats} repetitions of "
              f"{args.num_runs} runs each")
        print(spread_line("interleaved, median per-pair ratio:", medians))
        print("interleaved, pair ratios p5-p95 within a run (median over repetitions): "
              f"{statistics.median(r.p5 for r in interleaved):.3f}-"
              f"{statistics.median(r.p95 for r in interleaved):.3f}")
        print(spread_line("separate runs, ratio of medians:   ", separate))
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
