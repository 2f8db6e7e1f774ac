"""Do the JAX and PyTorch `.tflite` files predict like the TensorFlow one? Per quantization mode.

    python benchmarks/backend_tflite_parity.py [--backends tensorflow,jax,torch] [--epochs 4]
                                               [--seed 0] [--out DIR] [--json results.json]

The digits CNN of `backend_overhead.py` ("small": 8x8, Conv16-Conv32-Dense64-Dense10, batch 16,
3 copies of the training split per epoch) is pruned to 80% (`PolynomialDecay`, `frequency=100`,
over the first 60% of the steps, `UpdatePruningStep`) on each backend, each in its own process
(`KERAS_BACKEND`), all from the same initial weights and in the same batch order (one NumPy
permutation per epoch, `shuffle=False`). Each process strips the model, saves it as `.keras` and
exports it with `ep.export_tflite` in every mode of edgeprune's table (`QUANTIZE_MODES`; the
calibrated ones with the first 200 training images). This process then runs every `.tflite` in
LiteRT (`ep.run_tflite`) on the digits test split and compares each JAX and PyTorch file with
TensorFlow's file of the same mode, in two views:

- same weights: TensorFlow's stripped `.keras`, loaded on JAX and on PyTorch and exported there;
- trained on each backend: each backend's own pruned model (training differs in the last float
  bits across backends, so the masks and weights may differ: the model table says how much).

Files go to `--out` (kept) or to a temporary folder (removed at the end).
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from backend_overhead import (
    FREQUENCY,
    MODELS,
    SPARSITY,
    initial_weights,
    layers_of,
    model_data,
    run_worker,
)

MODEL = "small"
CALIBRATION_SAMPLES = 200
REFERENCE = "tensorflow"
VIEWS = {"same": "same weights (TF-trained .keras)", "trained": "trained on each backend"}


def mode_label(mode):
    return mode or "float32"


def train_pruned(keras, ep, weights, epochs, seed):
    """The small CNN from `weights`, pruned to SPARSITY while training, stripped."""
    spec = MODELS[MODEL]
    (x, y), _ = model_data(spec)
    steps = int(np.ceil(len(x) / spec["batch"]))
    end_step = FREQUENCY * max(1, int(steps * epochs * 0.6) // FREQUENCY)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(layers_of(keras, spec))
    model.set_weights(weights)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.PolynomialDecay(
        0.0, SPARSITY, begin_step=0, end_step=end_step, frequency=FREQUENCY))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = ep.UpdatePruningStep()
    order = np.random.default_rng(seed)  # the same batches, in the same order, on every backend
    for epoch in range(epochs):
        batches = order.permutation(len(x))
        pruned.fit(x[batches], y[batches], batch_size=spec["batch"], epochs=epoch + 1,
                   initial_epoch=epoch, shuffle=False, verbose=0, callbacks=[callback])
    return ep.strip_pruning(pruned)


def export_every_mode(ep, model, calibration, folder, prefix):
    """`{mode label: file name}` of `model` exported to `folder` in every mode of
    `ep.QUANTIZE_MODES`."""
    from edgeprune.quantize.export import MODES

    names = {}
    for mode in ep.QUANTIZE_MODES:
        names[mode_label(mode)] = f"{prefix}_{mode_label(mode)}.tflite"
        ep.export_tflite(model, os.path.join(folder, names[mode_label(mode)]), quantize=mode,
                         representative_data=calibration if MODES[mode].calibrated else None)
    return names


def worker(args):
    """One backend: train, strip, save, export; the TF-trained `.keras` exported here too."""
    import edgeprune as ep  # noqa: I001  (before Keras: TensorFlow's start-up lines stay hidden)
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        # backend_overhead.py: two spin-waiting OpenMP threads on a loaded 2-core machine cost
        # 14x the CPU of one.
        import torch
        torch.set_num_threads(args.torch_threads)
    spec = MODELS[MODEL]
    (x, _), (xt, yt) = model_data(spec)
    calibration = x[:CALIBRATION_SAMPLES]
    arrays = np.load(args.weights)
    weights = [arrays[f"{MODEL}_{i}"] for i in range(len(arrays.files))]

    start = time.perf_counter()
    model = train_pruned(keras, ep, weights, args.epochs, args.seed)
    train_seconds = time.perf_counter() - start
    model.save(os.path.join(args.out, f"{backend}.keras"))
    start = time.perf_counter()
    files = {"trained": export_every_mode(ep, model, calibration, args.out, f"trained_{backend}")}
    export_seconds = time.perf_counter() - start
    reference = os.path.join(args.out, f"{REFERENCE}.keras")
    if backend != REFERENCE:
        files["same"] = export_every_mode(ep, keras.saving.load_model(reference), calibration,
                                          args.out, f"same_{backend}")
    report = ep.sparsity_report(model)
    print(json.dumps({
        "keras": f"{backend}.keras", "files": files,
        "keras_accuracy": float(np.mean(np.argmax(model.predict(xt, verbose=0), -1) == yt)),
        "zeros": sum(r["zeros"] for r in report), "prunable": sum(r["size"] for r in report),
        "train_seconds": train_seconds, "export_seconds": export_seconds,
    }))


def spawn(backend, args, weights_path):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--weights", weights_path,
               "--out", args.out, "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--torch-threads", str(args.torch_threads)]
    return run_worker(command, backend)


def file_figures(folder, name, reference_name, yt, outputs):
    """Size, byte identity, agreement and accuracy of one `.tflite` against the reference's."""
    with open(os.path.join(folder, name), "rb") as f:
        data = f.read()
    with open(os.path.join(folder, reference_name), "rb") as f:
        reference = f.read()
    ours, theirs = outputs[name], outputs[reference_name]
    return {"bytes": len(data), "identical": data == reference,
            "sha256": hashlib.sha256(data).hexdigest()[:16],
            "agreement": float(np.mean(ours.argmax(-1) == theirs.argmax(-1))),
            "identical_outputs": float(np.mean(ours == theirs)),
            "mean_abs_difference": float(np.abs(ours - theirs).mean()),
            "max_abs_difference": float(np.abs(ours - theirs).max()),
            "accuracy": float(np.mean(ours.argmax(-1) == yt)),
            "reference_accuracy": float(np.mean(theirs.argmax(-1) == yt))}


def kernel_figures(keras, folder, name, reference_name):
    """How the stripped weights in `name` differ from the reference's: masks and values."""
    ours, theirs = (keras.saving.load_model(os.path.join(folder, n)).get_weights()
                    for n in (name, reference_name))
    kernels = [(a, b) for a, b in zip(ours, theirs) if a.ndim > 1]
    same_mask = sum(int(np.sum((a == 0) == (b == 0))) for a, b in kernels)
    return {"mask_agreement": same_mask / sum(a.size for a, _ in kernels),
            "identical_masks": sum(bool(np.array_equal(a == 0, b == 0)) for a, b in kernels),
            "kernels": len(kernels),
            "max_abs_weight_difference": max(float(np.abs(a - b).max())
                                             for a, b in zip(ours, theirs))}


def compare(results, backends, folder):
    """Runs every file in LiteRT and fills in the per-file and per-model figures."""
    import edgeprune as ep  # noqa: I001
    import keras

    _, (xt, yt) = model_data(MODELS[MODEL])
    names = {name for r in results.values() if "files" in r
             for files in r["files"].values() for name in files.values()}
    outputs = {name: np.asarray(ep.run_tflite(os.path.join(folder, name), xt))
               for name in sorted(names)}
    reference = results[REFERENCE]
    for backend in backends:
        result = results[backend]
        if "files" not in result:
            continue
        result["figures"] = {
            view: {mode: file_figures(folder, name, reference["files"]["trained"][mode], yt,
                                      outputs)
                   for mode, name in files.items()}
            for view, files in result["files"].items()}
        result["model"] = kernel_figures(keras, folder, result["keras"], reference["keras"])


def print_tables(results, backends, args):
    print(f"digits CNN ({MODEL}) pruned to {SPARSITY:.0%} over {args.epochs} epochs from the same "
          f"initial weights and batch order; LiteRT on the {len(model_data(MODELS[MODEL])[1][1])}"
          f" test images; each file against TensorFlow's file of the same mode\n")
    print("| view | backend | mode | bytes | byte-identical to TF | top-1 agreement | "
          "output difference, mean / max | accuracy | TF file's accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for view, title in VIEWS.items():
        for backend in backends:
            if backend == REFERENCE:
                continue
            result = results[backend]
            if "error" in result:
                print(f"| {title} | {backend} | not measured: {result['error']} |||||||")
                continue
            for mode, f in result["figures"].get(view, {}).items():
                print(f"| {title} | {backend} | {mode} | {f['bytes']:,} | "
                      f"{'yes' if f['identical'] else 'no'} | {f['agreement']:.2%} | "
                      f"{f['mean_abs_difference']:.3g} / {f['max_abs_difference']:.3g} | "
                      f"{f['accuracy']:.2%} | {f['reference_accuracy']:.2%} |")
    print("\n| backend | Keras accuracy (stripped) | zeros in the pruned kernels | kernel masks "
          "equal to TF's (entries, whole kernels) | max abs weight difference | train s | "
          "export s |")
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        r = results[backend]
        if "error" in r:
            print(f"| {backend} | not measured: {r['error']} ||||||")
            continue
        m = r["model"]
        masks, difference = ("(reference)", "") if backend == REFERENCE else (
            f"{m['mask_agreement']:.4%}, {m['identical_masks']} of {m['kernels']}",
            f"{m['max_abs_weight_difference']:.3g}")
        print(f"| {backend} | {r['keras_accuracy']:.2%} | {r['zeros']:,} of {r['prunable']:,} "
              f"({r['zeros'] / r['prunable']:.2%}) | {masks} | {difference} | "
              f"{r['train_seconds']:.1f} | {r['export_seconds']:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", help="keep the .keras and .tflite files in this folder")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    # build_cnn's InputLayer(input_shape=...) is written for tf_keras as well.
    warnings.filterwarnings("ignore", message="Argument `input_shape` is deprecated")
    backends = args.backends.split(",")
    if backends[0] != REFERENCE:
        parser.error(f"--backends must start with {REFERENCE}: every file is compared with "
                     f"{REFERENCE}'s, and the other backends export its .keras too "
                     f"(got {args.backends!r})")

    with tempfile.TemporaryDirectory() as tmp:
        args.out = os.path.abspath(args.out or tmp)
        os.makedirs(args.out, exist_ok=True)
        weights_path = os.path.join(tmp, "init.npz")
        initial_weights([MODEL], args.seed, weights_path)
        results = {backend: spawn(backend, args, weights_path) for backend in backends}
        if "error" in results[REFERENCE]:
            sys.exit(f"the {REFERENCE} run failed, nothing to compare with: "
                     f"{results[REFERENCE]['error']}")
        compare(results, backends, args.out)
    print_tables(results, backends, args)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
