"""Quantization chain on the digits CNN: dense float vs pruned-80% int8 PTQ vs pruned-80% QAT.

Every figure is measured on the `.tflite` itself: accuracy on the digits test split (LiteRT),
gzip size, kernel sparsity read back from the flatbuffer, and LiteRT latency as a ratio to the
dense float model, timed interleaved by device_bench in one process (the machines are noisy).

    python benchmarks/quantization_chain.py [--block_size 4,1] [--output_json results.json]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import edgeprune as ep  # noqa: E402
from device_bench.fileio import atomic_write  # noqa: E402
from litert_latency import interleaved_latency  # noqa: E402

BATCH = 32


def digits_cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def compiled(model, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def train_variants(x, y, args):
    keras.utils.set_random_seed(args.seed)
    dense = compiled(digits_cnn(), 1e-3)
    dense.fit(x, y, epochs=args.epochs, batch_size=BATCH, verbose=0)

    steps = args.prune_epochs * int(np.ceil(len(x) / BATCH))
    schedule = ep.PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0,
                                  end_step=int(steps * 0.6), frequency=10)
    pruned = compiled(ep.prune_low_magnitude(dense, pruning_schedule=schedule,
                                             block_size=args.block_size), 5e-4)
    pruned.fit(x, y, epochs=args.prune_epochs, batch_size=BATCH, verbose=0,
               callbacks=[ep.UpdatePruningStep()])
    stripped = ep.strip_pruning(pruned)

    qat = compiled(ep.quantize_model(stripped), 1e-4)
    qat.fit(x, y, epochs=args.qat_epochs, batch_size=BATCH, verbose=0)
    return dense, stripped, qat


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prune_epochs", type=int, default=30)
    parser.add_argument("--qat_epochs", type=int, default=5)
    parser.add_argument("--block_size", type=lambda text: tuple(int(v) for v in text.split(",")),
                        default=(1, 1), help="pruning block, e.g. 4,1 (Keras kernel axes)")
    parser.add_argument("--num_runs", type=int, default=10000, help="timed invokes per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json")
    args = parser.parse_args()

    (x, y), (x_test, y_test) = ep.load_digits()
    dense, stripped, qat = train_variants(x, y, args)
    calibration = x[:300]
    models = {
        "dense float32": (ep.export_tflite(dense), dense),
        "pruned-80% int8 PTQ": (ep.export_tflite(stripped, quantize="int8", int8_io=True,
                                                 representative_data=calibration), stripped),
        "pruned-80% int8 QAT": (ep.export_tflite(qat, quantize="int8", int8_io=True,
                                                 representative_data=calibration), qat),
    }
    latency = interleaved_latency({name: tfl for name, (tfl, _) in models.items()}, args.num_runs)
    results = {}
    for name, (tflite, keras_model) in models.items():
        check = ep.validate_tflite(tflite, keras_model, x_test, y_test)
        size = ep.size_report(tflite)
        results[name] = {
            "tflite_accuracy": check.tflite_accuracy, "keras_accuracy": check.keras_accuracy,
            "raw_bytes": size.raw_bytes, "gzip_bytes": size.gzip_bytes,
            "kernel_sparsity": {w.name: round(w.sparsity, 4) for w in size.weights},
            **latency[name]}

    reference = results["dense float32"]
    print("| model | .tflite accuracy | Δ vs dense float (points) | raw bytes | gzip bytes | "
          "gzip smaller | kernel sparsity (read back) | LiteRT speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        sparsities = ", ".join(f"{s:.1%}" for s in r["kernel_sparsity"].values())
        print(f"| {name} | {r['tflite_accuracy']:.2%} | "
              f"{100 * (r['tflite_accuracy'] - reference['tflite_accuracy']):+.2f} | "
              f"{r['raw_bytes']} | {r['gzip_bytes']} | "
              f"{reference['gzip_bytes'] / r['gzip_bytes']:.2f}x | {sparsities} | "
              f"{r['speedup']:.2f}x ({r['p50_us']:.1f} µs) |")
    print(f"\nPruning block size {args.block_size}. Test samples: {len(x_test)}. Latency: "
          f"device_bench, {args.num_runs} interleaved single-sample invokes per model on random "
          "inputs, 1 thread, LiteRT's default XNNPACK delegate; speedup = median of the "
          "interleaved pair ratios.")
    if args.output_json:
        atomic_write(args.output_json, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
