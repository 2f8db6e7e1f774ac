"""`PruneLowMagnitude`: the layer wrapper that multiplies a layer's prunable weights by masks."""

import re

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from edgeprune import registry
from edgeprune.schedules import ConstantSparsity, PruningSchedule, deserialize_schedule

BLOCK_POOLING_TYPES = ("AVG", "MAX")
PRUNING_SCOPES = ("layer", "global")

MISSING_CALLBACK = (
    "Pruning wrappers need their step counter: pass `edgeprune.UpdatePruningStep()` in "
    "`callbacks` of `fit()`, or call `edgeprune.PruningController(model).begin()` and `.step()` "
    "in a custom training loop.")


def relative_weight_name(layer, variable):
    """A variable's path inside `layer` ("kernel", "query/kernel"): stable across save/load.

    Variables of sublayers created outside the layer's name scope (a Bidirectional's copies)
    keep their full path.
    """
    prefix = layer.path + "/"
    return variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path


def weight_key(layer, variable):
    """How a wrapper names one of `layer`'s weights, the same in a copy of the layer and after
    save/load: its path inside the layer, or "weights[i]", its position, for a weight Keras named
    itself (an `add_weight` without `name=` is "variable_18" here and "variable_36" in a copy)."""
    if _KERAS_AUTO_NAME.fullmatch(variable.name):
        return f"weights[{next(i for i, w in enumerate(layer.weights) if w is variable)}]"
    return relative_weight_name(layer, variable)


_KERAS_AUTO_NAME = re.compile(r"variable(_\d+)?")


@keras.saving.register_keras_serializable(package="edgeprune")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Masks the prunable weights of `layer`; masks change only at pruning steps.

    The forward pass uses `weight * mask` (the variable itself is only rewritten at pruning steps
    and epoch ends), so pruned weights get no gradient and the wrapper works unchanged under
    mixed precision and `tf.distribute` strategies. Masks are computed outside the training graph
    by `PruningController` (driven by the `UpdatePruningStep` callback).

    Args:
        layer: the Keras layer to prune.
        pruning_schedule: a `PruningSchedule` (default: 50% from step 0, every 100 steps).
        block_size: (rows, cols) blocks pruned together, on the weight's 2-D view.
        block_pooling_type: "AVG" or "MAX", how a block's magnitudes are pooled.
        sparsity_m_by_n: (m, n): m zeros in every n consecutive weights along TFLite's
            input-channel axis, e.g. (2, 4). Replaces the schedule's sparsity target.
        pruning_scope: "layer" ranks this layer's weights alone (tfmot), "global" ranks them
            together with every other "global" wrapper in the model.
        weight_names: which of the layer's weights to mask, by path inside the layer
            ("kernel", "query/kernel"; "weights[i]" for the i-th weight when Keras named it,
            see `weight_key`); default: the registry's prunable weights.
        channel_pruning: None, or the options of `structure="channels"` pruning (criterion,
            pruning_scope, round_to, min_channels, skip_layers): the controller then computes this wrapper's
            masks together with the model's other channel wrappers (`edgeprune.structured`).
        taylor_axes: `{weight name: [axis, ...]}`, the axes along which the weights index
            coupled channels. With `channel_pruning` criterion "taylor", each training batch adds
            (Σ w·∂L/∂w)² per channel along each axis to an accumulator the controller ranks
            channels by (and resets) at the next pruning step.

    Example:

    >>> import keras, edgeprune as ep
    >>> dense = ep.PruneLowMagnitude(keras.layers.Dense(4),
    ...                              pruning_schedule=ep.ConstantSparsity(0.5, 0))
    >>> y = dense(keras.ops.ones((2, 3)))
    >>> [tuple(m.shape) for m in dense.masks]
    [(3, 4)]
    """

    def __init__(self, layer, pruning_schedule=None, block_size=(1, 1),
                 block_pooling_type="AVG", sparsity_m_by_n=None, pruning_scope="layer",
                 weight_names=None, channel_pruning=None, taylor_axes=None, **kwargs):
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = deserialize_schedule(pruning_schedule) or ConstantSparsity(0.5, 0)
        if not isinstance(self.pruning_schedule, PruningSchedule):
            raise ValueError("pruning_schedule must be an edgeprune PruningSchedule, got "
                             f"{type(self.pruning_schedule).__name__}.")
        self.block_size = _validate_pair(block_size, "block_size", minimum=1)
        if block_pooling_type not in BLOCK_POOLING_TYPES:
            raise ValueError(f"block_pooling_type must be one of {BLOCK_POOLING_TYPES}, got "
                             f"{block_pooling_type!r}.")
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = None
        if sparsity_m_by_n is not None:
            self.sparsity_m_by_n = _validate_pair(sparsity_m_by_n, "sparsity_m_by_n", minimum=1)
            if self.sparsity_m_by_n[0] >= self.sparsity_m_by_n[1]:
                raise ValueError(f"sparsity_m_by_n=(m, n) needs m < n, got {sparsity_m_by_n}.")
            if self.block_size != (1, 1):
                raise ValueError("sparsity_m_by_n and block_size cannot be combined: choose one.")
        if pruning_scope not in PRUNING_SCOPES:
            raise ValueError(f"pruning_scope must be one of {PRUNING_SCOPES}, got "
                             f"{pruning_scope!r}.")
        if pruning_scope == "global" and self.sparsity_m_by_n:
            raise ValueError("N:M sparsity is a fixed per-group pattern; it has no global "
                             "ranking. Use pruning_scope='layer' with sparsity_m_by_n.")
        self.pruning_scope = pruning_scope
        self.weight_names = list(weight_names) if weight_names is not None else None
        self.channel_pruning = dict(channel_pruning) if channel_pruning else None
        self.taylor_axes = ({name: [int(a) for a in axes] for name, axes in taylor_axes.items()}
                            if taylor_axes else None)
        if self.taylor_axes and (self.channel_pruning or {}).get("criterion") != "taylor":
            raise ValueError("taylor_axes is for channel_pruning with criterion 'taylor'.")
        self.supports_masking = layer.supports_masking
        self.step_owner = None  # weakref to the PruningController that counts steps

    def current_step(self):
        """The training step: the controller's count while one drives this wrapper (it writes
        `pruning_step` lazily), else the saved variable."""
        controller = self.step_owner() if self.step_owner is not None else None
        if controller is not None:
            return controller.current_step
        return int(ops.convert_to_numpy(self.pruning_step))

    def save_own_variables(self, store):
        # A checkpoint taken mid-epoch needs the step now, not at the next lazy write.
        self.pruning_step.assign(self.current_step())
        super().save_own_variables(store)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.pruned_weights = self._resolve_weights()
        if not self.pruned_weights:
            raise ValueError(f"Layer '{self.layer.name}' ({type(self.layer).__name__}) has no "
                             "weight to prune; leave it unwrapped.")
        self.masks, self.thresholds = [], []
        self.taylor_importance = []  # (index in pruned_weights, axis, accumulator variable)
        for index, weight in enumerate(self.pruned_weights):
            key = weight_key(self.layer, weight)
            name = key.replace("/", "_")
            self.masks.append(self.add_weight(
                name=f"{name}_mask", shape=weight.shape, initializer="ones", trainable=False,
                aggregation="only_first_replica"))
            self.thresholds.append(self.add_weight(
                name=f"{name}_threshold", shape=(), initializer="zeros", trainable=False,
                aggregation="only_first_replica"))
            for axis in (self.taylor_axes or {}).get(key, ()):
                # "sum": under a distribution strategy every replica's batches count.
                self.taylor_importance.append((index, axis, self.add_weight(
                    name=f"{name}_taylor_axis{axis}", shape=(weight.shape[axis],),
                    initializer="zeros", trainable=False, aggregation="sum")))
        # -1 until UpdatePruningStep / PruningController starts training (tfmot semantics).
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), dtype="int64", initializer=keras.initializers.Constant(-1),
            trainable=False, aggregation="only_first_replica")
        self.built = True

    def _resolve_weights(self):
        if self.weight_names is None:
            return registry.prunable_weights(self.layer, prune_depthwise=True)
        by_name = {weight_key(self.layer, w): w for w in self.layer.weights}
        unknown = [n for n in self.weight_names if n not in by_name]
        if unknown:
            raise ValueError(f"Layer '{self.layer.name}' has no weight named {unknown}; its "
                             f"weights are {sorted(by_name)}.")
        return [by_name[n] for n in self.weight_names]

    def call(self, inputs, *args, training=None, **kwargs):
        if training:
            # In-graph check, as tfmot: the step counter is only set by the callback/controller.
            tf.debugging.Assert(self.pruning_step >= 0, [MISSING_CALLBACK])
        mapping = []
        for index, (weight, mask) in enumerate(zip(self.pruned_weights, self.masks)):
            value = weight.value * ops.cast(mask, weight.dtype)
            if training:
                value = _accumulate_taylor(value, [(axis, accumulator) for i, axis, accumulator
                                                   in self.taylor_importance if i == index])
            mapping.append((weight, value))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = self.layer(inputs, *args, **kwargs)
        # The scope also caught the inner layer's other state updates (seeds, statistics).
        masked = {id(w) for w in self.pruned_weights}
        for variable in self.layer.variables:
            if id(variable) not in masked:
                value = scope.get_current_value(variable)
                if value is not None:
                    variable.assign(value)
        return outputs

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def masked_weight_values(self):
        """The current weights with masks applied, as NumPy arrays (what strip bakes in)."""
        return [apply_mask(ops.convert_to_numpy(w), ops.convert_to_numpy(m))
                for w, m in zip(self.pruned_weights, self.masks)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule),
            "block_size": list(self.block_size),
            "block_pooling_type": self.block_pooling_type,
            "sparsity_m_by_n": list(self.sparsity_m_by_n) if self.sparsity_m_by_n else None,
            "pruning_scope": self.pruning_scope,
            "weight_names": self.weight_names,
            "channel_pruning": self.channel_pruning,
            "taylor_axes": self.taylor_axes,
        })
        return config


def _accumulate_taylor(value, accumulators):
    """`value` unchanged; its backward pass adds (Σ value·gradient)² per index of each axis."""
    if not accumulators:
        return value

    @tf.custom_gradient
    def identity(x):
        def gradient(upstream):
            contribution = tf.cast(upstream * x, "float32")
            # A mixed-precision step whose scaled loss overflowed is skipped by the optimizer:
            # its gradients must not poison the scores either.
            contribution = tf.where(tf.math.is_finite(contribution), contribution, 0.0)
            for axis, accumulator in accumulators:
                others = [a for a in range(contribution.shape.rank) if a != axis]
                accumulator.assign_add(tf.square(tf.reduce_sum(contribution, axis=others)))
            return upstream

        return tf.identity(x), gradient

    return identity(value)


def apply_mask(weight, mask):
    """`weight` with zeros where `mask` is 0: +0.0, never the -0.0 a product gives for negative
    weights, whose bit pattern would break the zero runs that make .tflite files compress."""
    return np.where(mask > 0, weight, np.zeros((), weight.dtype))


def _validate_pair(value, name, minimum):
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of integers, got {value!r}.") from None
    if len(pair) != 2 or min(pair) < minimum:
        raise ValueError(f"{name} must be a pair of integers >= {minimum}, got {value!r}.")
    return pair
