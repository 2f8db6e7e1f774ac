"""One backend's side of tests/backends/test_cross_backend.py, run as
`KERAS_BACKEND=<backend> python cross_backend_child.py <folder> [<.keras file to resume>]
[--resume-only]`.

From the weights in `<folder>/weights.npz` it prunes a small CNN with each granularity, driving a
`PruningController` for 40 steps (masks at 10, 20, 30, 40) and changing the weights in NumPy
before each mask update, the same on every backend. The unstructured model is saved at step 20 to
`<folder>/<backend>.keras`, the masks go to `<folder>/<backend>.npz`. Given a file saved by
another backend, it loads it, records its masks and step, continues the same 20 steps, and trains
two batches with `fit`, into `<folder>/<backend>.resumed.npz`. `--resume-only` skips the pruning.
"""

import sys

import keras
import numpy as np
from keras import ops

import edgeprune as ep

STEPS, SAVE_AT = 40, 20
CONFIGS = {
    "unstructured": {},
    "block": {"block_size": (1, 4)},
    "m_by_n": {"sparsity_m_by_n": (2, 4)},
    "global": {"pruning_scope": "global"},
}


def build(weights):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
                              keras.layers.Flatten(), keras.layers.Dense(16),
                              keras.layers.Dense(10)])
    model.set_weights(weights)
    return model


def change_weights(model, step):
    """Adds the same NumPy noise on every backend, as training would between pruning steps."""
    rng = np.random.default_rng(step)
    for wrapper in ep.PruningController(model).wrappers:
        for weight in wrapper.pruned_weights:
            value = ops.convert_to_numpy(weight)
            weight.assign(value + rng.normal(0, 0.02, value.shape).astype(value.dtype))


def run_steps(model, controller, last_step):
    while controller.current_step < last_step:
        if controller.prunes_next_step():
            change_weights(model, controller.current_step + 1)
        controller.step()


def masks_of(model, prefix):
    arrays = {}
    for i, wrapper in enumerate(ep.PruningController(model).wrappers):
        for j, (mask, threshold) in enumerate(zip(wrapper.masks, wrapper.thresholds)):
            arrays[f"{prefix}/{i}.{j}/mask"] = ops.convert_to_numpy(mask)
            arrays[f"{prefix}/{i}.{j}/threshold"] = ops.convert_to_numpy(threshold)
    return arrays


def main(folder, resume_from=None, resume_only=False):
    backend = keras.backend.backend()
    if not resume_only:
        np.savez(f"{folder}/{backend}.npz", **prune_and_save(folder, backend))
    if resume_from:
        np.savez(f"{folder}/{backend}.resumed.npz", **resume(resume_from))


def prune_and_save(folder, backend):
    weights = list(np.load(f"{folder}/weights.npz").values())
    out = {}
    for name, options in CONFIGS.items():
        pruned = ep.prune_low_magnitude(build(weights), pruning_schedule=ep.PolynomialDecay(
            0.0, 0.8, begin_step=0, end_step=STEPS, frequency=10), **options)
        controller = ep.PruningController(pruned)
        controller.begin()
        run_steps(pruned, controller, SAVE_AT)
        if name == "unstructured":
            pruned.save(f"{folder}/{backend}.keras")
        run_steps(pruned, controller, STEPS)
        out.update(masks_of(pruned, name))
    return out


def resume(path):
    out = {}
    resumed = keras.models.load_model(path)
    controller = ep.PruningController(resumed)
    controller.begin()
    out["resumed/step"] = np.array(controller.current_step)
    out.update(masks_of(resumed, "resumed/loaded"))
    run_steps(resumed, controller, STEPS)
    out.update(masks_of(resumed, "resumed/final"))

    trained = keras.models.load_model(path)
    trained.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    (x, y), _ = ep.load_digits()
    trained.fit(x[:64], y[:64], batch_size=32, verbose=0, callbacks=[ep.UpdatePruningStep()])
    out["trained/step"] = np.array(
        [int(ops.convert_to_numpy(w.pruning_step)) for w in ep.PruningController(
            trained).wrappers])
    out.update(masks_of(trained, "trained"))
    return out


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--resume-only"]
    main(*arguments, resume_only="--resume-only" in sys.argv[1:])
