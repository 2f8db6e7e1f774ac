"""Dense vs edgeprune vs tfmot on the digits CNN: accuracy, sparsity, step time, gzip'd .tflite.

    python benchmarks/pruning_vs_tfmot.py [--epochs 12] [--repeat 3] [--seeds 3]

Each framework trains its variants in one process, epoch by epoch in turn (dense, 80%, 90%, dense,
...), so a step-time ratio compares epochs run side by side on the same noisy machine. tfmot runs
in its own process (importing it switches TensorFlow to Keras 2). All variants start from the
same initial weights. Step time is the median over epochs, the first (tracing) epoch excluded;
the step-time ratio is the median over epoch pairs run side by side.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

BATCH = 16
SPARSITIES = (0.8, 0.9)


def build_cnn(layers, size=8, filters=(16, 32), units=64):
    """The digits CNN, written once for Keras 3 (`keras.layers`) and tf_keras (`tf_keras.layers`);
    `size`, `filters` and `units` scale it (images of `size` x `size`)."""
    return [layers.InputLayer(input_shape=(size, size, 1)),
            layers.Conv2D(filters[0], 3, padding="same", activation="relu"),
            layers.Conv2D(filters[1], 3, activation="relu"), layers.Flatten(),
            layers.Dense(units, activation="relu"), layers.Dense(10)]


def data(repeat):
    from edgeprune.data import load_digits
    (x, y), (xt, yt) = load_digits()
    # Repeating the training split gives epochs of a few hundred steps: long enough to time.
    return (np.concatenate([x] * repeat), np.concatenate([y] * repeat)), (xt, yt)


def run_variants(variants, make_fit, epochs):
    """Trains each variant one epoch at a time, in turn; returns per-variant epoch times."""
    times = {name: [] for name in variants}
    for epoch in range(epochs):
        for name, model in variants.items():
            start = time.perf_counter()
            make_fit(name, model, epoch)
            times[name].append(time.perf_counter() - start)
    return times


def summarize(times, steps):
    """Median step time in ms per variant, the first (tracing) epoch excluded."""
    return {name: float(np.median(t[1:])) / steps * 1e3 for name, t in times.items()}


class Framework:
    """What differs between edgeprune on Keras 3 and tfmot on tf_keras: the rest is shared."""

    def __init__(self, keras_module, sparsity_api, kernel_sparsity):
        self.keras = keras_module
        self.api = sparsity_api
        self.kernel_sparsity = kernel_sparsity


def edgeprune_framework():
    import keras
    import edgeprune as ep

    def kernel_sparsity(model):
        report = ep.sparsity_report(model)
        return sum(r["zeros"] for r in report) / sum(r["size"] for r in report)

    return Framework(keras, ep, kernel_sparsity)


def tfmot_framework():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    def kernel_sparsity(model):
        kernels = [w for w in model.get_weights() if w.ndim > 1]
        return sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)

    return Framework(tf_keras, tfmot.sparsity.keras, kernel_sparsity)


def run(framework, args, init_weights):
    """Trains dense and each sparsity in turn; returns accuracy, sparsity, gzip size, step time."""
    import tensorflow as tf

    keras, api = framework.keras, framework.api
    (x, y), (xt, yt) = data(args.repeat)
    steps = int(np.ceil(len(x) / BATCH))
    end_step = int(steps * args.epochs * 0.6)
    variants, callbacks = {}, {}
    for sparsity in (None,) + SPARSITIES:
        name = "dense" if sparsity is None else f"{int(sparsity * 100)}%"
        model = keras.Sequential(build_cnn(keras.layers))
        model.set_weights(init_weights)
        callbacks[name] = []
        if sparsity is not None:
            schedule = api.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step,
                                           frequency=100)
            model = api.prune_low_magnitude(model, pruning_schedule=schedule)
            callbacks[name] = [api.UpdatePruningStep()]
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        variants[name] = model

    def fit(name, model, epoch):
        model.fit(x, y, batch_size=BATCH, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                  callbacks=callbacks[name])

    times = run_variants(variants, fit, args.epochs)
    results = {}
    for name, model in variants.items():
        final = model if name == "dense" else api.strip_pruning(model)
        tflite = tf.lite.TFLiteConverter.from_keras_model(final).convert()
        results[name] = {
            "accuracy": float(np.mean(np.argmax(final.predict(xt, verbose=0), -1) == yt)),
            "sparsity": framework.kernel_sparsity(final),
            "gzip_bytes": len(gzip.compress(tflite, 9)),
        }
    for name, step_ms in summarize(times, steps).items():
        results[name]["step_ms"] = step_ms
        # Epochs run side by side: the ratio per epoch pair cancels most of the machine's drift.
        results[name]["epoch_ratios"] = [t / d for t, d in zip(times[name][1:], times["dense"][1:])]
    return results


def initial_weights(seed):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential(build_cnn(keras.layers)).get_weights()


def tfmot_in_subprocess(args, weights, seed):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "init.npz")
        np.savez(path, *weights)
        out = subprocess.run([sys.executable, __file__, "--worker", "tfmot", "--weights", path,
                              "--seed", str(seed), "--epochs", str(args.epochs),
                              "--repeat", str(args.repeat)],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def aggregate(per_seed):
    """Mean accuracy, sparsity and size over seeds; the median step-time ratio over all epoch
    pairs (variant epoch / dense epoch of the same round), first epochs excluded."""
    summary = {}
    for name in per_seed[0]:
        rows = [results[name] for results in per_seed]
        summary[name] = {
            "accuracy": float(np.mean([r["accuracy"] for r in rows])),
            "accuracy_range": (min(r["accuracy"] for r in rows), max(r["accuracy"] for r in rows)),
            "sparsity": float(np.mean([r["sparsity"] for r in rows])),
            "gzip_bytes": float(np.mean([r["gzip_bytes"] for r in rows])),
            "step_ms": float(np.median([r["step_ms"] for r in rows])),
            "step_ratio": float(np.median([q for r in rows for q in r["epoch_ratios"]])),
        }
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3, help="training split copies per epoch")
    parser.add_argument("--seeds", type=int, default=3, help="initial weights and data order")
    parser.add_argument("--worker", choices=["tfmot"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "tfmot":
        import tensorflow as tf
        tf.random.set_seed(args.seed)
        weights = list(np.load(args.weights).values())
        print(json.dumps(run(tfmot_framework(), args, weights)))
        return

    ours, theirs = [], []
    for seed in range(args.seeds):
        weights = initial_weights(seed)  # also seeds Keras 3's data shuffling for this run
        ours.append(run(edgeprune_framework(), args, weights))
        theirs.append(tfmot_in_subprocess(args, weights, seed))

    print(f"digits CNN, {args.epochs} epochs x {args.repeat} copies of the training split, "
          f"batch {BATCH}, PolynomialDecay to the target over 60% of training, "
          f"{args.seeds} seeds (accuracy: mean [min-max]; step-time ratio: median over epoch pairs)")
    print(f"{'variant':<18}{'accuracy':>23}{'sparsity':>10}{'step ms':>9}{'vs dense':>10}"
          f"{'gzip KB':>9}{'vs dense':>10}")
    for framework, per_seed in (("keras3", ours), ("tf_keras", theirs)):
        results = aggregate(per_seed)
        dense = results["dense"]
        for name, r in results.items():
            label = f"{'edgeprune' if framework == 'keras3' else 'tfmot'} {name}" \
                if name != "dense" else f"dense ({framework})"
            low, high = r["accuracy_range"]
            accuracy = f"{r['accuracy'] * 100:.2f}% [{low * 100:.1f}-{high * 100:.1f}]"
            print(f"{label:<18}{accuracy:>23}{r['sparsity'] * 100:>9.1f}%{r['step_ms']:>9.3f}"
                  f"{r['step_ratio']:>9.2f}x{r['gzip_bytes'] / 1024:>9.1f}"
                  f"{dense['gzip_bytes'] / r['gzip_bytes']:>9.2f}x")


if __name__ == "__main__":
    main()
