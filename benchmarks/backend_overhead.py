"""Step-time overhead of pruning, per backend: dense vs 80% pruned, epochs interleaved.

    python benchmarks/backend_overhead.py [--backends tensorflow,jax,torch] [--models small,large]
                                          [--epochs 8] [--no-tfmot] [--json results.json]

Two CNNs on the bundled digits, both written by `pruning_vs_tfmot.build_cnn`: "small" is the
pruning core benchmark's (8x8 images, Conv16-Conv32-Dense64-Dense10, batch 16, 3 copies of the
training split per epoch) and "large" scales it up (digits upscaled to 24x24, Conv32-Conv64-
Dense128-Dense10, batch 32, 2 copies). Every backend runs in its own process (`KERAS_BACKEND`),
tfmot in another (tf_keras), all from the same initial weights. In a process, dense and pruned
(`PolynomialDecay` 0 -> 80%, `frequency=100`, over the first 60% of the steps) train one epoch each
in turn, the order alternating (dense first in even rounds, pruned first in odd ones), so each pair
of epochs ran side by side on the same machine. Each epoch is timed by the wall clock and by the
process's CPU time (on a shared machine, wall time also counts waiting for a core). A ratio is
pruned over dense in one pair; the first pair (tracing) is left out; tables show the median and
[min-max] over the pairs.

Where the time goes: the pruning callback's own hooks are timed inside the pruned fit, so the
table splits the host's per-epoch work into batch calls that update no mask, mask updates (pruning
steps) and the epoch-end bake; what remains of the overhead is in the training step itself.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from pruning_vs_tfmot import build_cnn, data, edgeprune_framework, tfmot_framework

from edgeprune.processes import child_environment

MODELS = {
    "small": {"size": 8, "filters": (16, 32), "units": 64, "batch": 16, "repeat": 3},
    "large": {"size": 24, "filters": (32, 64), "units": 128, "batch": 32, "repeat": 2},
}
SPARSITY = 0.8
FREQUENCY = 100


def model_data(spec):
    """Digits repeated `spec["repeat"]` times per epoch, upscaled (nearest) to the model's size."""
    (x, y), (xt, yt) = data(spec["repeat"])
    scale = spec["size"] // x.shape[1]
    upscale = np.ones((1, scale, scale, 1), np.float32)
    return (np.kron(x, upscale), y), (np.kron(xt, upscale), yt)


def layers_of(keras, spec):
    return build_cnn(keras.layers, spec["size"], spec["filters"], spec["units"])


def timed_callback(callback_class):
    """A subclass of the framework's `UpdatePruningStep` that times its own hooks, by the wall
    clock and the process's CPU time: per-batch calls (in order) and epoch ends."""

    class Timed(callback_class):
        def __init__(self):
            super().__init__()
            self.batch_seconds, self.epoch_end_seconds = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.batch_seconds.append(timed(super().on_train_batch_begin, batch, logs))

        def on_epoch_end(self, batch, logs=None):
            self.epoch_end_seconds.append(timed(super().on_epoch_end, batch, logs))

    return Timed


def timed(function, *args):
    """`(wall seconds, CPU seconds)` that `function(*args)` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_epochs(fits, epochs):
    """Runs `fits[name](epoch)` for each name in turn, one epoch at a time, the order reversed
    every other round; returns {name: [(wall seconds, CPU seconds), ...]} per epoch."""
    names = list(fits)
    times = {name: [] for name in names}
    for epoch in range(epochs):
        for name in names if epoch % 2 == 0 else names[::-1]:
            times[name].append(timed(fits[name], epoch))
    return times


def run_model(framework, spec, weights, epochs):
    """Dense and pruned trained side by side; accuracies, sparsity, per-epoch times and the
    pruning callback's hook times."""
    keras, api = framework.keras, framework.api
    (x, y), (xt, yt) = model_data(spec)
    steps = int(np.ceil(len(x) / spec["batch"]))
    end_step = FREQUENCY * max(1, int(steps * epochs * 0.6) // FREQUENCY)
    dense = keras.Sequential(layers_of(keras, spec))
    dense.set_weights(weights)
    pruned = keras.Sequential(layers_of(keras, spec))
    pruned.set_weights(weights)
    schedule = api.PolynomialDecay(0.0, SPARSITY, begin_step=0, end_step=end_step,
                                   frequency=FREQUENCY)
    pruned = api.prune_low_magnitude(pruned, pruning_schedule=schedule)
    callback = timed_callback(api.UpdatePruningStep)()
    for model in (dense, pruned):
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def fit(model, callbacks):
        return lambda epoch: model.fit(x, y, batch_size=spec["batch"], epochs=epoch + 1,
                                       initial_epoch=epoch, verbose=0, callbacks=callbacks)

    times = interleaved_epochs({"dense": fit(dense, []), "pruned": fit(pruned, [callback])},
                               epochs)
    stripped = api.strip_pruning(pruned)

    def accuracy(model):
        return float(np.mean(np.argmax(model.predict(xt, verbose=0), -1) == yt))

    batch_ms = np.array(callback.batch_seconds) * 1e3  # rows: (wall, CPU)
    updates = [step - 1 for step in range(1, len(batch_ms) + 1) if bool(schedule(step)[0])]
    plain = np.delete(batch_ms, updates, axis=0)
    return {
        "steps_per_epoch": steps, "end_step": end_step,
        "accuracy": {"dense": accuracy(dense), "pruned": accuracy(stripped)},
        "sparsity": framework.kernel_sparsity(stripped),
        "times": times,
        # (wall, CPU) pairs: batch calls that update no mask (median per call, in us, and total
        # per epoch, in ms), mask updates (mean, ms) and epoch ends (median, ms).
        "callback": {"batch_call_us": (np.median(plain, axis=0) * 1e3).tolist(),
                     "batch_calls_ms_per_epoch": (plain.sum(axis=0) / epochs).tolist(),
                     "mask_updates": len(updates),
                     "mask_update_ms": (batch_ms[updates].mean(axis=0) if updates
                                        else np.zeros(2)).tolist(),
                     "epoch_end_ms": (np.median(callback.epoch_end_seconds, axis=0)
                                      * 1e3).tolist()},
    }


def worker(framework_name, args):
    """One process: one backend of Keras 3 with edgeprune, or tf_keras with tfmot."""
    framework = tfmot_framework() if framework_name == "tfmot" else edgeprune_framework()
    if framework.keras.backend.backend() == "torch":
        # Two OpenMP threads spin-waiting for each other on a loaded 2-core machine took 120 ms
        # of CPU per step of the small CNN, one thread 8.5 ms (dense and pruned alike).
        import torch
        torch.set_num_threads(args.torch_threads)
    weights = np.load(args.weights)
    results = {}
    for name in args.models.split(","):
        framework.keras.utils.set_random_seed(args.seed)
        spec = MODELS[name]
        count = sum(key.startswith(f"{name}_") for key in weights.files)
        try:
            results[name] = run_model(framework, spec, [weights[f"{name}_{i}"] for i in range(count)],
                                      args.epochs)
        except Exception as error:  # noqa: BLE001  (a backend that cannot train yet is reported)
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(results))


def initial_weights(models, seed, path):
    import edgeprune  # noqa: F401, I001  (before Keras: TensorFlow's start-up lines stay hidden)
    import keras

    arrays = {}
    for name in models:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(layers_of(keras, MODELS[name]))
        arrays.update({f"{name}_{i}": w for i, w in enumerate(model.get_weights())})
    np.savez(path, **arrays)


def spawn(label, backend, args, weights_path):
    command = [sys.executable, os.path.abspath(__file__), "--worker",
               "tfmot" if label == "tfmot" else "edgeprune", "--weights", weights_path,
               "--models", args.models, "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--torch-threads", str(args.torch_threads)]
    result = run_worker(command, backend)
    if "error" in result:
        return {name: result for name in args.models.split(",")}
    return result


def run_worker(command, backend):
    """Runs a worker `command` in its own process on `backend` (Keras picks its backend once per
    process): the JSON of its last line of output, or {"error": its last line of errors}."""
    env = child_environment(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def pair_ratios(times, which):
    """Pruned over dense per pair of epochs run side by side, the first pair left out."""
    return [p[which] / d[which] for p, d in zip(times["pruned"][1:], times["dense"][1:])]


def spread(values):
    return f"{np.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


def print_tables(results, args):
    print(f"dense vs {SPARSITY:.0%} pruned, {args.epochs} epochs each, interleaved; "
          "ratio = pruned / dense epoch time, median [min-max] over the pairs after the first")
    for name in args.models.split(","):
        spec = MODELS[name]
        print(f"\n{name} CNN: {spec['size']}x{spec['size']}, Conv{spec['filters'][0]}-"
              f"Conv{spec['filters'][1]}-Dense{spec['units']}-Dense10, batch {spec['batch']}")
        print(f"{'run':<22}{'dense ms wall/CPU':>18}{'wall ratio':>20}{'CPU ratio':>20}"
              f"{'acc dense':>10}{'pruned':>8}{'sparsity':>9}")
        for label, per_model in results.items():
            result = per_model.get(name, {"error": "not run"})
            if "error" in result:
                print(f"{label:<22}  not measured: {result['error']}")
                continue
            times, steps = result["times"], result["steps_per_epoch"]
            dense_ms = np.median(np.array(times["dense"][1:]), axis=0) / steps * 1e3
            acc = result["accuracy"]
            print(f"{label:<22}{pair(dense_ms, 2):>18}{spread(pair_ratios(times, 0)):>20}"
                  f"{spread(pair_ratios(times, 1)):>20}{acc['dense'] * 100:>9.2f}%"
                  f"{acc['pruned'] * 100:>7.2f}%{result['sparsity'] * 100:>8.1f}%")
        print("host work of the pruning callback, wall / CPU:")
        print(f"{'':<22}{'per batch (us)':>16}{'batches/epoch (ms)':>20}{'mask update (ms)':>22}"
              f"{'epoch end (ms)':>16}")
        for label, per_model in results.items():
            c = per_model.get(name, {}).get("callback")
            if c:
                print(f"{label:<22}{pair(c['batch_call_us'], 1):>16}"
                      f"{pair(c['batch_calls_ms_per_epoch'], 1):>20}"
                      f"{pair(c['mask_update_ms'], 0) + ' x' + str(c['mask_updates']):>22}"
                      f"{pair(c['epoch_end_ms'], 1):>16}")


def pair(values, digits):
    return " / ".join(f"{v:.{digits}f}" for v in values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default="small,large")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tfmot", action="store_true", help="skip tfmot's reference run")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--json", help="also write the raw results (per-epoch times) here")
    parser.add_argument("--worker", choices=["edgeprune", "tfmot"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
    if args.worker:
        worker(args.worker, args)
        return

    runs = [(f"edgeprune {backend}", backend) for backend in args.backends.split(",")]
    if not args.no_tfmot:
        runs.append(("tfmot (tf_keras)", "tensorflow"))
    with tempfile.TemporaryDirectory() as tmp:
        weights_path = os.path.join(tmp, "init.npz")
        initial_weights(args.models.split(","), args.seed, weights_path)
        results = {label: spawn("tfmot" if label.startswith("tfmot") else label, backend, args,
                                weights_path) for label, backend in runs}
    print_tables(results, args)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
