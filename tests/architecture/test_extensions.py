"""Each kind of extension is one class and one registration, from user code alone: a granularity,
a channel criterion that needs gradients, a channel rule for a custom layer, and a recipe stage
(a device_bench target: tests/device_bench/test_target_registry.py). Each runs end to end."""

import json

import keras
import numpy as np
import pytest
from keras import layers, ops

import edgeprune as ep
from edgeprune import cli
from edgeprune.recipe import Stage, register_stage
from edgeprune.recipe.stages.registry import unregister_stage
from edgeprune.sparsity.granularity import GRANULARITIES
from edgeprune.structured.criteria import CRITERIA
from edgeprune.structured.layer_rules import unregister_channel_rule
from tests.recipes.conftest import QUICKSTART


def digits(count=96):
    (x, y), _ = ep.load_digits()
    return x[:count], y[:count]


def fit(model, epochs=2, callbacks=()):
    x, y = digits()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def relative_difference(a, b, x):
    expected = ops.convert_to_numpy(a(x))
    return np.abs(ops.convert_to_numpy(b(x)) - expected).max() / np.abs(expected).max()


# --------------------------------------------------------------------- a new granularity

class Rows(ep.Granularity):
    """Removes whole rows of each kernel's 2-D view (all weights reading one input position)."""

    name = "test_rows"
    options = {"norm": "l1"}

    def check_options(self, options):
        options = super().check_options(options)
        if options["norm"] not in ("l1", "max"):
            raise ValueError(f"norm must be 'l1' or 'max', got {options['norm']!r}.")
        return options

    def layer_masks(self, weights, sparsity, options):
        results = []
        for weight in weights:
            rows = np.abs(weight.reshape(-1, weight.shape[-1]))
            scores = rows.sum(axis=1) if options["norm"] == "l1" else rows.max(axis=1)
            keep = np.zeros(len(scores), "float32")
            keep[np.argsort(-scores)[:max(1, round(len(scores) * (1 - sparsity)))]] = 1.0
            mask = np.repeat(keep[:, None], weight.shape[-1], axis=1).reshape(weight.shape)
            results.append((mask, 0.0))
        return results


@pytest.fixture
def rows():
    """Registered for one test only: registries are process-wide, and other tests list them."""
    ep.register_granularity(Rows())
    yield
    GRANULARITIES.unregister(Rows.name)


def test_a_registered_granularity_prunes_trains_strips_and_shrinks(rows, tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(),
                              layers.Dense(32, activation="relu", name="hidden"),
                              layers.Dense(10, name="out")])
    schedule = ep.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule, structure="test_rows",
                                    norm="max")
    fit(pruned, epochs=2, callbacks=[ep.UpdatePruningStep()])
    path = str(tmp_path / "rows.keras")
    pruned.save(path)  # the granularity and its options survive save/load
    pruned = keras.models.load_model(path)
    assert pruned.layers[1].granularity_options == {"norm": "max"}
    final = ep.strip_pruning(pruned)
    kernel = final.get_layer("hidden").kernel.numpy()
    zero_rows = (np.abs(kernel).sum(axis=1) == 0).sum()
    assert zero_rows == 64 - round(64 * 0.25)  # whole rows, at the schedule's final sparsity
    small = ep.shrink(final)
    assert relative_difference(final, small, digits(4)[0]) <= 1e-6
    with pytest.raises(ValueError, match="norm"):
        ep.prune_low_magnitude(model, structure="test_rows", norm="median")
    with pytest.raises(ValueError, match="test_rows.*block_size"):
        ep.prune_low_magnitude(model, structure="test_rows", block_size=(2, 2))


def test_a_registered_granularity_is_a_valid_recipe_structure(rows):
    from edgeprune.recipe import load_recipe

    recipe = load_recipe(QUICKSTART, ["pruning.structure=test_rows"])
    assert recipe["pruning"]["structure"] == "test_rows"


# ------------------------------------------------- a channel criterion that needs gradients

class Fisher(ep.ChannelCriterion):
    """Σ (w·∂L/∂w)² per channel: the diagonal Fisher information of the weights it owns."""

    name = "test_fisher"
    needs_gradients = True

    def gradient_terms(self, value, gradient, axis):
        others = [a for a in range(len(value.shape)) if a != axis % len(value.shape)]
        return ops.sum(ops.square(ops.cast(value * gradient, "float32")), axis=others)


@pytest.fixture
def fisher():
    ep.register_channel_criterion(Fisher())
    yield
    CRITERIA.unregister(Fisher.name)


def channel_cnn():
    x = keras.Input((8, 8, 1))
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(y)
    y = layers.Dense(10, name="out")(layers.GlobalAveragePooling2D()(y))
    return keras.Model(x, y)


@pytest.mark.every_backend
def test_a_gradient_criterion_prunes_channels_while_training_and_one_shot(fisher):
    schedule = ep.ConstantSparsity(0.5, begin_step=4, frequency=4)
    pruned = ep.prune_low_magnitude(channel_cnn(), pruning_schedule=schedule,
                                    structure="channels", criterion="test_fisher")
    wrapper = pruned.get_layer("prune_low_magnitude_c1")
    assert wrapper.gradient_axes == {"kernel": [3], "bias": [0]}
    fit(pruned, epochs=2, callbacks=[ep.UpdatePruningStep()])
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    assert small.get_layer("c1").filters == 4 and small.get_layer("c2").filters == 4
    assert relative_difference(final, small, digits(4)[0]) <= 1e-5

    x, y = digits(32)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = fit(channel_cnn(), epochs=1)
    one_shot = ep.prune_channels(model, 0.5, criterion="test_fisher", data=(x, y), loss=loss)
    kept = np.abs(one_shot.get_layer("c1").kernel.numpy()).sum(axis=(0, 1, 2)) > 0
    assert kept.sum() == 4
    assert relative_difference(one_shot, ep.shrink(one_shot), x[:4]) <= 1e-5
    with pytest.raises(ValueError, match="test_fisher.*needs data"):
        ep.prune_channels(model, 0.5, criterion="test_fisher")


# ------------------------------------------------------- a channel rule for a custom layer

class ChannelScale(layers.Layer):
    """Multiplies each channel by its own factor."""

    def build(self, input_shape):
        self.factor = self.add_weight(name="factor", shape=(input_shape[-1],),
                                      initializer="ones")

    def call(self, inputs):
        return inputs * self.factor


class Project(layers.Layer):
    """A 1x1 projection to `channels` output channels, sized by its config."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.channels))

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def scale_rule(graph, layer, node, in_ids):
    graph.add_slice(layer, "factor", 0, in_ids[0], "pass")
    return in_ids


def project_rule(graph, layer, node, in_ids):
    out = graph.fresh(layer, layer.channels)
    graph.add_slice(layer, "kernel", 0, in_ids[0], "in")
    graph.add_slice(layer, "kernel", 1, out, "out")
    graph.mark_resizable(layer, out)
    return [out]


def custom_cnn():
    x = keras.Input((8, 8, 1))
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    y = ChannelScale(name="scale")(y)
    y = Project(12, name="project")(y)
    y = layers.Dense(10, name="out")(layers.GlobalAveragePooling2D()(layers.ReLU()(y)))
    return keras.Model(x, y)


@pytest.fixture
def custom_rules():
    ep.register_channel_rule(ChannelScale, scale_rule)
    ep.register_channel_rule(Project, project_rule,
                             resize=lambda layer, channels: {**layer.get_config(),
                                                             "channels": channels})
    yield
    for layer_class in (ChannelScale, Project):
        unregister_channel_rule(layer_class)


def test_a_custom_layer_without_a_rule_keeps_its_channels():
    unknown = ep.ChannelGraph(custom_cnn())
    assert {u.layer for u in unknown.unprunable} == {"scale", "project"}


@pytest.mark.every_backend
def test_a_channel_rule_makes_a_custom_layer_prunable_and_resizable(custom_rules):
    model = custom_cnn()
    graph = ep.ChannelGraph(model)
    assert graph.unprunable == [] and sorted(g.name for g in graph.groups) == ["conv", "project"]
    model.get_layer("scale").factor.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
    zeroed = ep.prune_channels(model, 0.5)
    small = ep.shrink(zeroed)
    assert small.get_layer("conv").filters == 4
    assert small.get_layer("scale").factor.shape == (4,)
    assert small.get_layer("project").channels == 6
    assert relative_difference(zeroed, small, digits(4)[0]) <= 1e-5


# ------------------------------------------------------------------- a recipe stage

def count_zeros(ctx):
    """A user's stage: counts the zero weights of the run's final Keras model."""
    model = ctx.load(ctx.latest_model())
    zeros = int(sum(np.count_nonzero(w == 0) for w in model.get_weights()))
    threshold = ctx.recipe["test_zeros"]["at_least"]
    path = ctx.path("zeros.json")
    with open(path, "w") as f:
        json.dump({"zeros": zeros, "enough": zeros >= threshold}, f)
    return {"outputs": {"zeros": "zeros.json"}}


@pytest.fixture
def zeros_stage():
    register_stage(Stage("test_zeros", count_zeros, lambda recipe: "test_zeros" in recipe,
                         section={"type": "object",
                                  "properties": {"at_least": {"type": "integer"}},
                                  "required": ["at_least"], "additionalProperties": False}),
                   after="strip")
    yield
    unregister_stage("test_zeros")


def test_a_registered_stage_runs_in_a_recipe_with_its_own_checked_section(zeros_stage, tmp_path,
                                                                          capsys):
    out = tmp_path / "run"
    argv = ["run", QUICKSTART, "--out", str(out), "--until", "test_zeros"]
    for override in ["training.epochs=1", "pruning.fine_tune.epochs=1", "pruning.schedule.end=1",
                     "test_zeros={at_least: 100}"]:
        argv += ["--set", override]
    assert cli.main(argv) == 0
    state = json.loads((out / "state.json").read_text())
    assert list(state["finished"]) == ["baseline", "prune", "strip", "test_zeros"]
    assert json.loads((out / "zeros.json").read_text())["enough"] is True
    assert cli.main(["validate", QUICKSTART, "--set", "test_zeros={at_least: many}"]) == 1
    assert "test_zeros.at_least: expected integer" in capsys.readouterr().err
