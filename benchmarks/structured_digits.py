"""Digits CNN: train dense, prune 50% of its channels gradually while training, shrink, and
compare test accuracy with the dense model trained for the same number of epochs.

    python benchmarks/structured_digits.py [--seeds 3] [--epochs 30] [--prune-epochs 15]
                                           [--criterion l1|l2|bn_gamma|taylor]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

import edgeprune as ep  # noqa: E402

BATCH = 32


def digits_cnn():
    x = keras.Input((8, 8, 1))
    y = x
    for filters in (32, 64):
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.MaxPooling2D()(y)
    y = layers.Conv2D(64, 3, padding="same", use_bias=False)(y)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.Dense(128, activation="relu")(layers.Flatten()(y))
    return keras.Model(x, layers.Dense(10)(layers.Dropout(0.3)(y)))


def compile_model(model):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y):
    return float((np.argmax(model.predict(x, verbose=0), axis=1) == y).mean())


def run(seed, epochs, prune_epochs, sparsity, criterion):
    (x, y), (xt, yt) = ep.load_digits()
    keras.utils.set_random_seed(seed)
    dense = compile_model(digits_cnn())
    dense.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)

    steps = int(np.ceil(len(x) / BATCH))
    # Reach the target over the first two thirds of the pruning epochs, then fine-tune.
    end = steps * (2 * prune_epochs // 3)
    schedule = ep.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end,
                                  frequency=max(1, end // 10))
    pruned = compile_model(ep.prune_low_magnitude(dense, pruning_schedule=schedule,
                                                  structure="channels", round_to=4,
                                                  criterion=criterion))
    pruned.fit(x, y, batch_size=BATCH, epochs=prune_epochs, verbose=0,
               callbacks=[ep.UpdatePruningStep()])
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    report = ep.shrink_report(final, small)

    dense.fit(x, y, batch_size=BATCH, epochs=prune_epochs, verbose=0)  # same training budget
    return accuracy(dense, xt, yt), accuracy(small, xt, yt), accuracy(final, xt, yt), report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prune-epochs", type=int, default=15)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--criterion", default="l1", choices=["l1", "l2", "bn_gamma", "taylor"])
    args = parser.parse_args()

    print(f"digits CNN, {args.epochs} dense epochs, then {args.prune_epochs} epochs of gradual "
          f"channel pruning to {args.sparsity:.0%} (PolynomialDecay, {args.criterion}, per layer, "
          "round_to=4) "
          f"vs {args.prune_epochs} more dense epochs")
    print("| seed | dense accuracy | shrunk accuracy | difference (points) |")
    print("|---|---|---|---|")
    differences = []
    for seed in range(args.seeds):
        dense_acc, small_acc, final_acc, report = run(seed, args.epochs, args.prune_epochs,
                                                      args.sparsity, args.criterion)
        assert small_acc == final_acc, "shrink changed the predictions"
        differences.append(100 * (dense_acc - small_acc))
        print(f"| {seed} | {100 * dense_acc:.2f}% | {100 * small_acc:.2f}% | "
              f"{differences[-1]:+.2f} |")
    params, macs = report.total("params"), report.total("macs")
    print(f"mean accuracy drop: {np.mean(differences):.2f} points; params {params[0]:,} -> "
          f"{params[1]:,}, MACs {macs[0]:,} -> {macs[1]:,} ({macs[0] / macs[1]:.2f}x fewer)")


if __name__ == "__main__":
    main()
