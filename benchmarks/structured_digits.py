"""Digits CNN: train dense, prune 50% of its channels gradually while training, shrink, and
compare test accuracy with the dense model trained for the same number of epochs.

With --one-shot, the trained model is pruned at once instead (`prune_channels`; "taylor" sums its
terms over every training batch), shrunk, and the smaller model is fine-tuned for the same epochs.

    python benchmarks/structured_digits.py [--seeds 3] [--epochs 30] [--prune-epochs 15]
                                           [--criterion l1|l2|bn_gamma|taylor] [--one-shot]
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


def run(seed, epochs, prune_epochs, sparsity, criterion, one_shot):
    """Test accuracies {"dense", "shrunk"[, "one-shot"]} and the shrink report of one seed."""
    (x, y), (xt, yt) = ep.load_digits()
    keras.utils.set_random_seed(seed)
    dense = compile_model(digits_cnn())
    dense.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    if one_shot:
        batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
        zeroed = ep.prune_channels(dense, sparsity, criterion=criterion, round_to=4,
                                   data=batches, loss=dense.loss)
    else:
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
        zeroed = ep.strip_pruning(pruned)
    small = ep.shrink(zeroed)
    shrunk = accuracy(small, xt, yt)
    assert shrunk == accuracy(zeroed, xt, yt), "shrink changed the predictions"
    result = {}
    if one_shot:  # the shrunk model fine-tunes for the epochs gradual pruning trains
        result["one-shot"] = shrunk
        compile_model(small).fit(x, y, batch_size=BATCH, epochs=prune_epochs, verbose=0)
    report = ep.shrink_report(zeroed, small)
    dense.fit(x, y, batch_size=BATCH, epochs=prune_epochs, verbose=0)  # same training budget
    result["dense"], result["shrunk"] = accuracy(dense, xt, yt), accuracy(small, xt, yt)
    return result, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prune-epochs", type=int, default=15)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--criterion", default="l1", choices=["l1", "l2", "bn_gamma", "taylor"])
    parser.add_argument("--one-shot", action="store_true",
                        help="prune the trained model at once, then fine-tune the shrunk one")
    args = parser.parse_args()

    how = ("one-shot, then the shrunk model fine-tunes" if args.one_shot
           else "gradual (PolynomialDecay)")
    print(f"digits CNN, {args.epochs} dense epochs, then {args.prune_epochs} epochs of channel "
          f"pruning to {args.sparsity:.0%}, {how}, {args.criterion}, per layer, round_to=4, "
          f"vs {args.prune_epochs} more dense epochs")
    columns = ["dense", "one-shot", "shrunk"] if args.one_shot else ["dense", "shrunk"]
    print("| seed | " + " | ".join(f"{c} accuracy" for c in columns) + " | difference (points) |")
    print("|---|" + "---|" * (len(columns) + 1))
    differences = []
    for seed in range(args.seeds):
        result, report = run(seed, args.epochs, args.prune_epochs, args.sparsity,
                             args.criterion, args.one_shot)
        differences.append(100 * (result["dense"] - result["shrunk"]))
        print(f"| {seed} | " + " | ".join(f"{100 * result[c]:.2f}%" for c in columns)
              + f" | {differences[-1]:+.2f} |")
    params, macs = report.total("params"), report.total("macs")
    print(f"mean accuracy drop: {np.mean(differences):.2f} points; params {params[0]:,} -> "
          f"{params[1]:,}, MACs {macs[0]:,} -> {macs[1]:,} ({macs[0] / macs[1]:.2f}x fewer)")


if __name__ == "__main__":
    main()
