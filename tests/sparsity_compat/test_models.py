"""Models tfmot prunes are pruned here too: keyword calls, Sequential models without an Input,
weightless layers, generic RNNs, custom layers without **kwargs; names survive the round trip."""

import keras
import numpy as np
import pytest

import edgeprune as ep

L = keras.layers


def wrapped(model):
    return ep.PruningController(model).wrappers


def outputs(model, x):
    """`model(x)` as NumPy, on any backend (a torch output that requires grad included)."""
    return keras.ops.convert_to_numpy(model(x))


@pytest.mark.every_backend
def test_a_layer_called_with_keyword_tensors_is_pruned(tmp_path):
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, L.MultiHeadAttention(2, 4)(query=inputs, value=inputs))
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.ConstantSparsity(0.5, 0))
    x = np.random.default_rng(0).random((2, 4, 8), dtype="float32")
    np.testing.assert_allclose(outputs(pruned, x), outputs(model, x), atol=1e-6)
    assert [len(w.pruned_weights) for w in wrapped(pruned)] == [4]

    # A fresh wrapper called with keywords builds its layer as that layer's call would.
    attention = ep.prune_low_magnitude(L.MultiHeadAttention(2, 4))
    built_here = keras.Model(inputs, attention(query=inputs, value=inputs, key=inputs))
    built_here.save(tmp_path / "attention.keras")
    restored = keras.models.load_model(tmp_path / "attention.keras")
    np.testing.assert_allclose(outputs(restored, x), outputs(built_here, x), atol=1e-6)


@pytest.mark.every_backend
def test_a_sequential_model_without_an_input_is_pruned_and_trains():
    model = keras.Sequential([L.Dense(4), L.Dropout(0.1), L.Dense(2)])
    pruned = ep.prune_low_magnitude(
        model, pruning_schedule=ep.ConstantSparsity(0.5, begin_step=1, frequency=1))
    assert isinstance(pruned, keras.Sequential) and not pruned.built
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "PruneLowMagnitude", "Dropout", "PruneLowMagnitude"]
    pruned.compile("adam", "mse")
    pruned.fit(np.ones((16, 3)), np.ones((16, 2)), batch_size=4, epochs=2, verbose=0,
               callbacks=[ep.UpdatePruningStep()])
    dense_rows = [r for r in ep.sparsity_report(ep.strip_pruning(pruned))]
    assert [r["sparsity"] for r in dense_rows] == [0.5, 0.5]


@pytest.mark.every_backend
def test_wrapped_layers_in_a_sequential_without_an_input_train_with_the_callback():
    # Built by the first batch, after on_train_begin: the masks due at step 1 come one step late.
    model = keras.Sequential([ep.prune_low_magnitude(L.Dense(4), pruning_schedule=ep.ConstantSparsity(
        0.75, begin_step=1, frequency=1)), L.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=4, epochs=1, verbose=0,
              callbacks=[ep.UpdatePruningStep()])
    wrapper = model.layers[0]
    assert int(wrapper.pruning_step.numpy()) == 2
    assert np.mean(wrapper.masks[0].numpy()) == 0.25


def test_a_wrapped_layer_keeps_its_input_shape():
    model = keras.Sequential([ep.prune_low_magnitude(L.Dense(4, input_shape=(3,)))])
    assert model.built and model.input_shape == (None, 3)


def test_unnamed_input_layers_keep_their_names_through_prune_and_strip():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, L.Dense(2)(L.Dense(4)(inputs)))
    sequential = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    for original in (model, sequential):
        round_trip = ep.strip_pruning(ep.prune_low_magnitude(original))
        assert round_trip.get_config() == original.get_config()


def test_weightless_layers_in_a_list_pass_through():
    layers = ep.prune_low_magnitude([L.Dense(4), L.Dropout(0.1), L.Flatten()])
    model = keras.Sequential([keras.Input((3,)), *layers])
    assert [len(w.pruned_weights) for w in wrapped(model)] == [1, 0, 0]
    stripped = ep.strip_pruning(model)
    assert [type(layer).__name__ for layer in stripped.layers] == ["Dense", "Dropout", "Flatten"]


@keras.saving.register_keras_serializable(package="tests")
class OpaqueCell(L.Layer):
    """A custom RNN cell that does not say what to prune."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

    def call(self, inputs, states):
        output = keras.ops.matmul(inputs, self.kernel) * self.scale + states[0]
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tests")
class ScaledCell(OpaqueCell):
    """A custom RNN cell that says what to prune."""

    def get_prunable_weights(self):
        return [self.kernel]


def test_generic_rnn_layers_prune_their_cells_kernels():
    cells = {"lstm": L.LSTMCell(4), "gru": L.GRUCell(4), "simple": L.SimpleRNNCell(4),
             "stacked": [L.LSTMCell(4), L.GRUCell(3)], "custom": ScaledCell(4)}
    inputs = keras.Input((5, 3))
    outputs = [L.RNN(cell, name=name)(inputs) for name, cell in cells.items()]
    model = keras.Model(inputs, outputs)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.ConstantSparsity(0.5, 0))
    names = {w.layer.name: [v.name for v in w.pruned_weights] for w in wrapped(pruned)}
    assert names == {"lstm": ["kernel", "recurrent_kernel"], "gru": ["kernel", "recurrent_kernel"],
                     "simple": ["kernel", "recurrent_kernel"],
                     "stacked": ["kernel", "recurrent_kernel"] * 2, "custom": ["kernel"]}
    x = np.random.default_rng(0).random((2, 5, 3), dtype="float32")
    for got, want in zip(pruned(x), model(x)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(want), atol=1e-6)

    opaque = keras.Model(inputs, L.RNN(OpaqueCell(4), name="opaque")(inputs))
    with pytest.raises(ValueError, match="'opaque' runs the cell.*get_prunable_weights.*skip"):
        ep.prune_low_magnitude(opaque)


class Halve(L.Layer):
    """A custom layer whose __init__ takes no **kwargs (so from_config cannot rebuild it)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor


@pytest.mark.every_backend
def test_a_custom_layer_without_kwargs_does_not_block_pruning():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, L.Dense(2)(Halve(0.5)(L.Dense(4)(inputs))))
    with pytest.raises(TypeError):
        Halve.from_config(model.layers[2].get_config())  # what copying used to do
    pruned = ep.prune_low_magnitude(model)
    stripped = ep.strip_pruning(pruned)
    x = np.random.default_rng(0).random((2, 3), dtype="float32")
    np.testing.assert_allclose(outputs(stripped, x), outputs(model, x), atol=1e-6)
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in model.layers]
    assert model.layers[2] not in stripped.layers


def test_summary_counts_each_layers_parameters_not_its_masks():
    model = keras.Sequential([keras.Input((3,)), L.Dense(4), L.Dense(2)])
    pruned = ep.prune_low_magnitude(model)
    assert [layer.count_params() for layer in pruned.layers] == [16, 10]
    lines = []
    pruned.summary(print_fn=lines.append)
    assert "16" in "".join(lines) and "│ 28 " not in "".join(lines)
