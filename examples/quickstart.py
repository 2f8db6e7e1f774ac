"""Quickstart: train a small CNN on the bundled digits set, prune it to 80% while it trains,
strip the wrappers and convert to TensorFlow Lite. Runs in about a minute on 2 CPU cores.

    python examples/quickstart.py [--out runs/quickstart]
"""

import argparse
import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import edgeprune as ep  # noqa: E402
from device_bench.fileio import atomic_write  # noqa: E402


def digits_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    (x, y), (x_test, y_test) = ep.load_digits()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    keras.utils.set_random_seed(0)
    dense = digits_cnn()
    dense.compile("adam", loss, metrics=["accuracy"])
    dense.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0)

    steps = int(np.ceil(len(x) / 32)) * args.epochs
    pruned = ep.prune_low_magnitude(dense, pruning_schedule=ep.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=steps // 2,
        frequency=10))
    pruned.compile("adam", loss, metrics=["accuracy"])
    pruned.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0,
               callbacks=[ep.UpdatePruningStep(),
                          ep.PruningSummaries(os.path.join(args.out, "logs"))])
    final = ep.strip_pruning(pruned)

    os.makedirs(args.out, exist_ok=True)
    final.save(os.path.join(args.out, "pruned.keras"))
    sizes = {}
    for name, model in (("dense", dense), ("pruned", final)):
        tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        atomic_write(os.path.join(args.out, f"{name}.tflite"), tflite)
        sizes[name] = (len(tflite), len(gzip.compress(tflite, 9)))

    print(f"{'model':<8}{'accuracy':>10}{'tflite KB':>11}{'gzip KB':>9}")
    for name, model in (("dense", dense), ("pruned", final)):
        raw, packed = sizes[name]
        print(f"{name:<8}{accuracy(model, x_test, y_test) * 100:>9.2f}%{raw / 1024:>11.1f}"
              f"{packed / 1024:>9.1f}")
    print("\nper-layer sparsity of the pruned model:")
    for row in ep.sparsity_report(final):
        print(f"  {row['layer']:<12}{row['weight']:<8}{str(row['shape']):<18}"
              f"{row['sparsity'] * 100:6.1f}%")
    print(f"\nartifacts in {args.out}/ (TensorBoard: tensorboard --logdir {args.out}/logs)")


if __name__ == "__main__":
    main()
