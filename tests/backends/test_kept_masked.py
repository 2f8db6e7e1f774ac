"""In `fit` on TensorFlow and JAX, with an optimizer that keeps a zero weight at zero, pruned
weights are kept at 0 in the variables and training steps mask gradients instead of kernels
(`edgeprune.sparsity.optimizer_state`). What that must keep: pruned weights exactly 0 after every
step, for every listed optimizer with every slot it has; the same training as multiplying by the
masks; the product for any other optimizer and outside `fit`; and a clear error when something
else writes a pruned weight. PyTorch masks its variables in place and never takes this path.
On every backend, the state a training step carries holds the masks but not the thresholds and
step counters, which stay among the weights that are saved."""

import keras
import numpy as np
import pytest
from keras import ops

import edgeprune as ep
from edgeprune.sparsity.optimizer_state import (ZERO_KEEPING_OPTIMIZERS,
                                                keeps_pruned_weights_at_zero)

pytestmark = pytest.mark.every_backend
masks_gradients = keras.backend.backend() != "torch"

# Each zero-keeping optimizer with the options that give it every slot it can have.
OPTIMIZERS = {
    "SGD": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "Adam": lambda: keras.optimizers.Adam(0.01, amsgrad=True),
    "AdamW": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True),
    "Adamax": lambda: keras.optimizers.Adamax(0.01),
    "Nadam": lambda: keras.optimizers.Nadam(0.01),
    "RMSprop": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "Adagrad": lambda: keras.optimizers.Adagrad(0.05),
    "Adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "Lion": lambda: keras.optimizers.Lion(0.001, weight_decay=0.1),
    "Lamb": lambda: keras.optimizers.Lamb(0.01),
}
# Lamb scales each update by the weight's norm, which drifting pruned weights change.
ELEMENTWISE = set(OPTIMIZERS) - {"Lamb"}


def test_every_zero_keeping_optimizer_is_tested():
    assert {cls.__name__ for cls in ZERO_KEEPING_OPTIMIZERS} == set(OPTIMIZERS)


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(96, 6, 6, 2)).astype("float32"), rng.integers(0, 4, 96)


def pruned_model(optimizer):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(8, 3),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.PolynomialDecay(
        0.0, 0.75, begin_step=0, end_step=12, frequency=3))
    pruned.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return pruned


def kernels_and_masks(model):
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()  # between batches JAX's fit holds the values
    return [(ops.convert_to_numpy(weight), ops.convert_to_numpy(mask))
            for wrapper in ep.sparsity.wrapper.pruning_wrappers(model)
            for weight, mask in zip(wrapper.pruned_weights, wrapper.masks)]


class RecordPrunedWeights(keras.callbacks.Callback):
    """After every batch: the largest pruned weight, and whether the wrappers kept them at 0."""

    def __init__(self):
        super().__init__()
        self.largest, self.kept = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.largest.append(max(float(np.abs(kernel[mask == 0]).max(initial=0.0))
                                for kernel, mask in kernels_and_masks(self.model)))
        self.kept.append(all(w.kept_masked
                             for w in ep.sparsity.wrapper.pruning_wrappers(self.model)))


def train(optimizer, keep_weights_masked=True, callbacks=()):
    model = pruned_model(optimizer)
    record = RecordPrunedWeights()
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[
        ep.UpdatePruningStep(keep_weights_masked), record, *callbacks])
    return model, record


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_pruned_weights_stay_zero_and_training_matches_the_product(name):
    kept, record = train(OPTIMIZERS[name]())
    assert all(record.kept) == masks_gradients
    if masks_gradients:
        assert max(record.largest) == 0.0  # after every step, not only at epoch ends
    assert not any(w.kept_masked for w in ep.sparsity.wrapper.pruning_wrappers(kept))
    product, product_record = train(OPTIMIZERS[name](), keep_weights_masked=False)
    assert not any(product_record.kept)
    for (kernel, mask), (product_kernel, product_mask) in zip(kernels_and_masks(kept),
                                                              kernels_and_masks(product)):
        assert mask.mean() == pytest.approx(0.25, abs=0.02)
        if name in ELEMENTWISE:
            np.testing.assert_array_equal(mask, product_mask)
            np.testing.assert_allclose(kernel, product_kernel, rtol=1e-5, atol=1e-6)
        assert not kernel[mask == 0].any()


class AdamSubclass(keras.optimizers.Adam):
    """A subclass: its update may differ from Adam's, so it is not trusted to keep zeros."""


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.Adam(use_ema=True), lambda: keras.optimizers.Ftrl(),
    lambda: keras.optimizers.Muon(), lambda: AdamSubclass()],
    ids=["ema", "ftrl", "muon", "subclass"])
def test_other_optimizers_multiply_by_the_masks(optimizer):
    assert not keeps_pruned_weights_at_zero(optimizer())
    model, record = train(optimizer())
    assert not any(record.kept)
    # With use_ema, fit ends by writing the averaged weights over the baked ones: the masks still
    # decide what the model computes and what strip keeps.
    stripped = ep.strip_pruning(model)
    assert [(ops.convert_to_numpy(k) == 0).mean()
            for k in (stripped.layers[0].kernel, stripped.layers[-1].kernel)] \
        == [pytest.approx(0.75, abs=0.02)] * 2
    x, _ = data()
    np.testing.assert_allclose(model.predict(x, verbose=0), stripped.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_a_loss_scale_optimizer_is_judged_by_its_inner_optimizer():
    assert keeps_pruned_weights_at_zero(keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam()))
    assert not keeps_pruned_weights_at_zero(keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(use_ema=True)))


def test_hooks_called_by_hand_keep_the_product():
    # tfmot's custom-loop guide calls the hooks itself, and may step another optimizer.
    model = pruned_model(keras.optimizers.Adam())
    callback = ep.UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(batch=-1)
    assert callback.controller.optimizer is None
    assert not any(w.kept_masked for w in ep.sparsity.wrapper.pruning_wrappers(model))


@pytest.mark.skipif(not masks_gradients, reason="PyTorch masks its variables in place")
def test_a_pruned_weight_written_during_training_is_an_error_naming_the_way_out():
    class WriteKernel(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 4:
                if hasattr(self.model, "jax_state_sync"):
                    self.model.jax_state_sync()
                kernel = self.model.layers[-1].layer.kernel
                kernel.assign(ops.ones(kernel.shape))

    with pytest.raises(RuntimeError, match=r"keep_weights_masked=False"):
        train(keras.optimizers.Adam(0.01), callbacks=[WriteKernel()])
    model, _ = train(keras.optimizers.Adam(0.01), keep_weights_masked=False,
                     callbacks=[WriteKernel()])
    for kernel, mask in kernels_and_masks(model):
        assert not kernel[mask == 0].any()


def test_the_step_state_holds_masks_and_the_weights_hold_thresholds_and_steps(tmp_path):
    model, _ = train(keras.optimizers.Adam(0.01))
    wrappers = ep.sparsity.wrapper.pruning_wrappers(model)
    bookkeeping = {id(v): v for w in wrappers for v in (*w.thresholds, w.pruning_step)}
    masks = {id(m) for w in wrappers for m in w.masks}
    # Conv2D and Dense hold no other non-trainable state: a JAX step carries these masks only.
    assert {id(v) for v in model.non_trainable_variables} == masks
    assert len(keras.tree.flatten(model.get_state_tree()["non_trainable_variables"])) == len(masks)
    assert not bookkeeping.keys() & {id(v) for v in model.variables}
    assert bookkeeping.keys() <= {id(v) for v in model.weights}
    assert len(model.get_weights()) == len(model.weights)

    steps = 3 * int(np.ceil(len(data()[0]) / 16))
    assert [int(ops.convert_to_numpy(w.pruning_step)) for w in wrappers] == [steps] * 2
    thresholds = [float(ops.convert_to_numpy(t)) for w in wrappers for t in w.thresholds]
    assert min(thresholds) > 0
    path = tmp_path / "pruned.keras"
    model.save(path)
    restored = ep.sparsity.wrapper.pruning_wrappers(keras.models.load_model(path))
    assert [int(ops.convert_to_numpy(w.pruning_step)) for w in restored] == [steps] * 2
    assert [float(ops.convert_to_numpy(t)) for w in restored for t in w.thresholds] == thresholds
