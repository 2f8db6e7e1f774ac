"""Iterative magnitude pruning: per-round sparsity, nested masks, rewinding, resume from disk."""

import json

import keras
import numpy as np
import pytest

import edgeprune as ep
from edgeprune.choose.iterative import round_sparsity
from tests.choose.conftest import accuracy_on, named_cnn

BATCH = 64
# One epoch a round is 22 batches: at Adam's default 1e-3 that leaves the 90% round at 0.38 to
# 0.54 accuracy depending on the backend's initial weights (the same weights give the same
# metrics on every backend); at 1e-2 every backend keeps 0.85 or more.
LEARNING_RATE = 1e-2


def trainer(data, fail_at_call=None):
    """A train_fn that counts its calls and can crash at one of them (to test resuming)."""
    calls = []

    def train(model, callbacks):
        calls.append(model)
        if len(calls) == fail_at_call:
            raise RuntimeError("simulated crash")
        (x, y), _ = data
        whole = len(x) // BATCH * BATCH  # no last short batch: JAX would compile a second step
        x, y = x[:whole], y[:whole]
        model.compile(keras.optimizers.Adam(LEARNING_RATE),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=callbacks)
    return train, calls


def kernel_zeros(path):
    model = keras.models.load_model(path)
    return {layer.name: layer.kernel.numpy() == 0 for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))}


@pytest.mark.every_backend
def test_rounds_reach_the_requested_sparsity_with_nested_masks(digits, tmp_path):
    train, calls = trainer(digits)
    accuracy = accuracy_on(digits)
    result = ep.iterative_magnitude_pruning(named_cnn(), train, accuracy,
                                            tmp_path, rounds=3, final_sparsity=0.9,
                                            progress=False)
    assert [r.round for r in result.rounds] == [0, 1, 2, 3] and len(calls) == 4
    previous = None
    for r in result.rounds:
        expected = round_sparsity(0.9, r.round / 3)
        zeros = kernel_zeros(tmp_path / r.model_path)
        for name, zero in zeros.items():
            assert abs(zero.mean() - expected) <= 1 / zero.size, (r.round, name)
            assert r.layer_sparsity[name] == pytest.approx(zero.mean())
            if previous is not None:  # a weight pruned once stays pruned
                assert np.all(zero[previous[name]])
        previous = zeros
        assert r.metric == accuracy(keras.models.load_model(tmp_path / r.model_path))
    assert result.rounds[-1].sparsity == pytest.approx(0.9, abs=1e-3)
    # Each round removes the same share of what is left: three equal rounds reach 90%.
    three_rounds = 1 - (1 - result.rounds[1].sparsity) ** 3
    assert three_rounds == pytest.approx(0.9, abs=1e-3)
    assert result.rounds[-1].metric > 0.75  # retraining keeps a working classifier


def test_global_scope_and_per_layer_targets(digits, tmp_path):
    train, _ = trainer(digits)
    globally = ep.iterative_magnitude_pruning(
        named_cnn(), train, lambda m: 0.0, tmp_path / "global", rounds=1,
        final_sparsity=0.8, pruning_scope="global", progress=False)
    last = globally.rounds[-1]
    assert last.sparsity == pytest.approx(0.8, abs=1e-4)
    assert max(last.layer_sparsity.values()) - min(last.layer_sparsity.values()) > 0.05

    model = named_cnn()
    first, second, hidden, head = [layer.name for layer in model.layers if layer.weights]
    per_layer = ep.iterative_magnitude_pruning(
        model, train, lambda m: 0.0, tmp_path / "layers", rounds=1,
        final_sparsity={second: 0.5, hidden: 0.9}, progress=False)
    reached = per_layer.rounds[-1].layer_sparsity
    assert reached[second] == pytest.approx(0.5, abs=1e-3)
    assert reached[hidden] == pytest.approx(0.9, abs=1e-4)
    assert reached[first] == reached[head] == 0.0


@pytest.mark.every_backend
def test_rewinding_restores_early_weights_on_surviving_positions(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:8 * BATCH], y[:8 * BATCH]  # eight batches a round: rewinding happens at three
    rewind_step = 3
    early, seen = {}, []

    def train(model, callbacks):
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if not early:  # round 0: stop after rewind_step batches to look at the weights
            model.fit(x[:rewind_step * BATCH], y[:rewind_step * BATCH], batch_size=BATCH,
                      shuffle=False, verbose=0, callbacks=callbacks)
            early.update({layer.name: layer.get_weights() for layer in model.layers})
        else:
            seen.append({layer.layer.name: ([w.numpy() for w in layer.layer.weights],
                                            layer.masks[0].numpy())
                         for layer in model.layers if isinstance(layer, ep.PruneLowMagnitude)})
        model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=callbacks)

    model = named_cnn()
    initial = model.get_layer("hidden").get_weights()[0]
    result = ep.iterative_magnitude_pruning(model, train, lambda m: 0.0, tmp_path, rounds=2,
                                            final_sparsity=0.75, rewind_step=rewind_step,
                                            progress=False)
    trained = keras.models.load_model(tmp_path / result.rounds[0].model_path)
    assert not np.allclose(early["hidden"][0], initial)
    assert not np.allclose(early["hidden"][0], trained.get_layer("hidden").get_weights()[0])
    assert len(seen) == 2
    for round_index, state in enumerate(seen, start=1):
        for name, ((kernel, bias), mask) in state.items():
            assert mask.mean() == pytest.approx(1 - round_sparsity(0.75, round_index / 2),
                                                abs=1 / mask.size)
            np.testing.assert_array_equal(kernel, early[name][0] * mask)
            np.testing.assert_array_equal(bias, early[name][1])
    for name, (_, mask) in seen[1].items():
        assert np.all(seen[0][name][1][mask > 0] == 1)  # masks kept, never regrown


def test_rewind_to_initialization(digits, tmp_path):
    train, calls = trainer(digits)
    model = named_cnn()
    initial = ep.layer_weights(model)
    ep.iterative_magnitude_pruning(model, train, lambda m: 0.0, tmp_path, rounds=1,
                                   final_sparsity=0.5, rewind_step=0, progress=False)
    assert len(calls) == 2
    with np.load(tmp_path / "rewind.npz") as checkpoint:
        for i, values in enumerate(initial):
            for j, value in enumerate(values):
                np.testing.assert_array_equal(checkpoint[f"{i}/{j}"], value)
    for before, after in zip(initial, ep.layer_weights(model)):
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)  # the user's model is never trained


def test_resume_skips_finished_rounds(digits, tmp_path):
    crashing, _ = trainer(digits, fail_at_call=3)
    settings = dict(rounds=3, final_sparsity=0.9, rewind_step=2, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ep.iterative_magnitude_pruning(named_cnn(), crashing, lambda m: 0.5,
                                       tmp_path, **settings)
    state = json.loads((tmp_path / "imp.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [0, 1]
    assert not (tmp_path / "round_2.keras").exists()

    train, calls = trainer(digits)
    result = ep.iterative_magnitude_pruning(named_cnn(), train, lambda m: 1.0,
                                            tmp_path, **settings)
    assert len(calls) == 2  # rounds 2 and 3 only
    assert [r.metric for r in result.rounds] == [0.5, 0.5, 1.0, 1.0]
    assert result.rounds[-1].sparsity == pytest.approx(0.9, abs=1e-3)
    # Round 2 was pruned from round 1's model on disk: what round 1 pruned stays pruned.
    resumed_from = keras.models.load_model(tmp_path / "round_1.keras")
    wrappers = [layer for layer in calls[0].layers if isinstance(layer, ep.PruneLowMagnitude)]
    assert len(wrappers) == 4
    for wrapper in wrappers:
        pruned_before = resumed_from.get_layer(wrapper.layer.name).kernel.numpy() == 0
        assert pruned_before.mean() > 0.5
        assert np.all(wrapper.masks[0].numpy()[pruned_before] == 0)
    with pytest.raises(ValueError, match="other settings"):
        ep.iterative_magnitude_pruning(named_cnn(), train, lambda m: 1.0,
                                       tmp_path, **{**settings, "final_sparsity": 0.8})


def test_bad_arguments_name_the_argument(tmp_path):
    model = named_cnn()

    def train(model, callbacks):
        pass

    def run(**overrides):
        args = dict(rounds=2, final_sparsity=0.5)
        ep.iterative_magnitude_pruning(model, train, lambda m: 0.0, tmp_path,
                                       **{**args, **overrides})

    for overrides, argument in [({"rounds": 0}, "rounds"), ({"rounds": 1.5}, "rounds"),
                                ({"final_sparsity": 1.0}, "final_sparsity"),
                                ({"final_sparsity": {"hidden": -0.1}}, "final_sparsity"),
                                ({"rewind_step": -1}, "rewind_step")]:
        with pytest.raises(ValueError, match=argument):
            run(**overrides)
    with pytest.raises(ValueError, match="rewind_step=10000 was never reached"):
        run(rewind_step=10000)
