"""`PruneLowMagnitude`: the layer wrapper that multiplies a layer's prunable weights by masks."""

import keras
import numpy as np
from keras import ops

from edgeprune.autodiff import accumulate_in_backward, masked_weight, store_accumulated
from edgeprune.model import keras_internals as internals
from edgeprune.model import rebuild as model_rebuild
from edgeprune.model.naming import weight_key
from edgeprune.model.substitute import call_with_weights
from edgeprune.sparsity import layer_registry
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.sparsity.schedules import ConstantSparsity, PruningSchedule, deserialize_schedule

MISSING_CALLBACK = (
    "Pruning wrappers need their step counter: pass `edgeprune.UpdatePruningStep()` in "
    "`callbacks` of `fit()`, or call `edgeprune.PruningController(model).begin()` and `.step()` "
    "in a custom training loop.")


class MissingPruningStepError(RuntimeError):
    """A pruned model trained with nothing counting its steps (no `UpdatePruningStep`)."""


@keras.saving.register_keras_serializable(package="edgeprune")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Masks the prunable weights of `layer`; masks change only at pruning steps.

    The forward pass uses `weight * mask` (on TensorFlow and JAX the variable itself is only
    rewritten at pruning steps and epoch ends), so pruned weights get no gradient and the wrapper
    works unchanged under mixed precision and `tf.distribute` strategies. In `fit` with an
    optimizer that keeps zero weights at zero (Adam, SGD, ...), training steps read the variable,
    which then holds the zeros, and mask only its gradient; on PyTorch the variable is masked in
    place before the forward pass instead (`edgeprune.autodiff.masked_weight`).
    Masks are computed outside the training graph by `PruningController` (driven by the
    `UpdatePruningStep` callback).

    Args:
        layer: the Keras layer to prune.
        pruning_schedule: a `PruningSchedule` (default: 50% from step 0, every 100 steps).
        block_size: (rows, cols) blocks pruned together, on the weight's 2-D view.
        block_pooling_type: "AVG" or "MAX", how a block's magnitudes are pooled.
        sparsity_m_by_n: (m, n): m zeros in every n consecutive weights along TFLite's
            input-channel axis, e.g. (2, 4). Replaces the schedule's sparsity target.
        pruning_scope: "layer" ranks this layer's weights alone (tfmot), "global" ranks them
            together with every other "global" wrapper in the model.
        weight_names: which of the layer's weights to mask, by `edgeprune.model.naming.weight_key`
            ("kernel", "query/kernel"; "weights[i]" for the i-th weight when Keras named it);
            default: the registry's prunable weights.
        granularity: the registered granularity that computes this wrapper's masks (see
            `edgeprune.sparsity.granularity`); block_size, block_pooling_type, sparsity_m_by_n and
            pruning_scope are the options of "unstructured", tfmot's spelling of them.
        granularity_options: the options of any other granularity, e.g. of "channels"
            (criterion, pruning_scope, round_to, min_channels, skip_layers).
        gradient_axes: `{weight name: [axis, ...]}`, for a granularity that ranks by gradients:
            each training batch adds the granularity's `gradient_terms` along each axis to an
            accumulator that the next pruning step reads (and resets).

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
                 weight_names=None, granularity="unstructured", granularity_options=None,
                 gradient_axes=None, **kwargs):
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = deserialize_schedule(pruning_schedule) or ConstantSparsity(0.5, 0)
        if not isinstance(self.pruning_schedule, PruningSchedule):
            raise ValueError("pruning_schedule must be an edgeprune PruningSchedule, got "
                             f"{type(self.pruning_schedule).__name__}.")
        tfmot_options = {"block_size": block_size, "block_pooling_type": block_pooling_type,
                         "sparsity_m_by_n": sparsity_m_by_n, "pruning_scope": pruning_scope}
        if granularity == "unstructured":
            options = {**tfmot_options, **(granularity_options or {})}
        else:
            if tfmot_options != _TFMOT_DEFAULTS:
                raise ValueError("block_size, block_pooling_type, sparsity_m_by_n and "
                                 "pruning_scope are options of granularity 'unstructured'; pass "
                                 f"granularity_options for {granularity!r}.")
            options = dict(granularity_options or {})
        self.granularity = granularity
        self.granularity_options = get_granularity(granularity).check_options(options)
        self.weight_names = list(weight_names) if weight_names is not None else None
        self.gradient_axes = ({name: [int(a) for a in axes] for name, axes in gradient_axes.items()}
                              if gradient_axes else None)
        self.supports_masking = layer.supports_masking
        self.step_owner = None  # weakref to the PruningController that counts steps
        # Set by that controller while it keeps pruned weights at 0 in the variables (see
        # `edgeprune.sparsity.optimizer_state`): training steps then mask only the gradient.
        self.kept_masked = False
        if internals.declared_input_shape(layer) is not None:
            # `Dense(4, input_shape=(3,))` wrapped first in a Sequential still builds it.
            internals.declare_input_shape(self, internals.declared_input_shape(layer))

    # tfmot's attribute names for the "unstructured" options.
    block_size = property(lambda self: self.granularity_options.get("block_size", (1, 1)))
    block_pooling_type = property(lambda self: self.granularity_options.get("block_pooling_type"))
    sparsity_m_by_n = property(lambda self: self.granularity_options.get("sparsity_m_by_n"))
    pruning_scope = property(lambda self: self.granularity_options.get("pruning_scope", "layer"))

    def current_step(self):
        """The training step: the controller's count while one drives this wrapper (it writes
        `pruning_step` lazily), else the saved variable."""
        controller = self.controller()
        if controller is not None:
            return controller.current_step
        return int(ops.convert_to_numpy(self.pruning_step))

    def controller(self):
        """The `PruningController` counting this wrapper's steps, or None."""
        return self.step_owner() if self.step_owner is not None else None

    def save_own_variables(self, store):
        # A checkpoint taken mid-epoch needs the step now, not at the next lazy write.
        self.pruning_step.assign(self.current_step())
        for _, _, accumulator in self.gradient_accumulators:
            store_accumulated(accumulator)  # JAX gathers them on the host
        super().save_own_variables(store)

    def __call__(self, *args, **kwargs):
        # Keras builds a layer from the shapes of its call's tensor arguments, matched by name to
        # `build`'s; the wrapper passes any arguments through (a MultiHeadAttention's `query=`,
        # `value=`), so its layer is built as that layer's own first call would build it.
        if not self.layer.built:
            internals.build_as_called(self.layer, args, kwargs)
        return super().__call__(*args, **kwargs)

    def build(self, input_shape=None):
        super().build(input_shape)
        # A layer with nothing to prune (Dropout, Flatten) is wrapped and passes through, as in
        # tfmot; an unknown layer holding weights raises here, naming the ways out.
        self.pruned_weights = self._resolve_weights()
        self.masks, self.thresholds = [], []
        self.gradient_accumulators = []  # (index in pruned_weights, axis, variable)
        for index, weight in enumerate(self.pruned_weights):
            key = weight_key(self.layer, weight)
            name = key.replace("/", "_")
            self.masks.append(self.add_weight(
                name=f"{name}_mask", shape=weight.shape, initializer="ones", trainable=False,
                aggregation="only_first_replica"))
            self.thresholds.append(self.add_weight(
                name=f"{name}_threshold", shape=(), initializer="zeros", trainable=False,
                aggregation="only_first_replica"))
            for axis in (self.gradient_axes or {}).get(key, ()):
                # "sum": under a distribution strategy every replica's batches count.
                self.gradient_accumulators.append((index, axis, self.add_weight(
                    name=f"{name}_gradient_axis{axis}", shape=(weight.shape[axis],),
                    initializer="zeros", trainable=False, aggregation="sum")))
        # -1 until UpdatePruningStep / PruningController starts training (tfmot semantics); a
        # wrapper first built by the first training batch (a model without an Input) starts at
        # the step of the controller already driving it.
        controller = self.controller()
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), dtype="int32", trainable=False,
            initializer=keras.initializers.Constant(-1 if controller is None
                                                    else controller.current_step),
            aggregation="only_first_replica")
        self.built = True

    def _resolve_weights(self):
        if self.weight_names is None:
            return layer_registry.prunable_weights(self.layer, prune_depthwise=True)
        by_name = {weight_key(self.layer, w): w for w in self.layer.weights}
        unknown = [n for n in self.weight_names if n not in by_name]
        if unknown:
            raise ValueError(f"Layer '{self.layer.name}' has no weight named {unknown}; its "
                             f"weights are {sorted(by_name)}.")
        return [by_name[n] for n in self.weight_names]

    @property
    def variables(self):
        """The state a training step carries: `weights` less the thresholds and the step counter,
        which only the controller reads and writes, between steps. JAX's `fit` passes (and
        Keras tracks) every variable into and out of each jitted step as its own array: leaving
        out the small digits CNN's 8 took its pruning overhead from 1.18x to 1.02-1.09x of the
        dense step. `weights` keeps them, so `get_weights()`, `set_weights()` and saved files
        hold what tfmot's wrapper holds."""
        bookkeeping = {id(v) for v in (*getattr(self, "thresholds", ()),
                                       getattr(self, "pruning_step", None)) if v is not None}
        return [v for v in super().variables if id(v) not in bookkeeping]

    def count_params(self):
        """The wrapped layer's parameters: masks, thresholds, the step and gradient accumulators
        exist only while pruning (`strip_pruning` drops them), so a summary's per-layer count is
        what the stripped layer deploys."""
        return self.layer.count_params()

    def call(self, inputs=None, *args, training=None, **kwargs):
        # `inputs` stays the first argument Keras reads masks from; a layer called with keyword
        # tensors only (`query=`, `value=`) gets them as keywords.
        if training and self.controller() is None:
            # Checked in Python, when the step runs eagerly or is traced (fit() traces after its
            # callbacks' on_train_begin): no op in the training graph, a short error.
            raise MissingPruningStepError(MISSING_CALLBACK)
        mapping = []
        for index, (weight, mask) in enumerate(zip(self.pruned_weights, self.masks)):
            if training and self.gradient_accumulators:
                granularity, options = get_granularity(self.granularity), self.granularity_options
                value = accumulate_gradient_terms(
                    weight.value * ops.cast(mask, weight.dtype),
                    [(axis, accumulator) for i, axis, accumulator
                     in self.gradient_accumulators if i == index],
                    lambda x, g, axis: granularity.gradient_terms(x, g, axis, options))
            else:
                value = masked_weight(weight, mask, bool(training and self.kept_masked))
            if value is not None:  # None: the variable holds the masked value itself
                mapping.append((weight, value))
        positional = args if inputs is None else (inputs, *args)
        if not mapping:
            return internals.call_nested(self.layer, self, positional, kwargs, training)
        return call_with_weights(self.layer, mapping, *positional, **kwargs)

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def assign_masks(self, results, ranked=None):
        """Sets this wrapper's masks and thresholds from `[(mask, threshold)]`, one per pruned
        weight, and zeroes the pruned values so the next ranking starts from what the model
        computes. A weight the old mask pruned stays 0 even where the new one keeps it.
        `ranked`: the `masked_weight_values()` the masks were computed from, if at hand (it saves
        reading each weight again, 16 MB for a 4M-weight kernel)."""
        ranked = ranked or self.masked_weight_values()
        for weight, value, mask_var, threshold_var, (mask, threshold) in zip(
                self.pruned_weights, ranked, self.masks, self.thresholds, results):
            mask_var.assign(mask)
            threshold_var.assign(threshold)
            weight.assign(apply_mask(value, mask))

    def masked_weight_values(self):
        """The current weights with masks applied, as NumPy arrays (what strip bakes in)."""
        return [apply_mask(ops.convert_to_numpy(w), ops.convert_to_numpy(m))
                for w, m in zip(self.pruned_weights, self.masks)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule),
            "weight_names": self.weight_names,
            "granularity": self.granularity,
            "granularity_options": _plain(self.granularity_options),
            "gradient_axes": self.gradient_axes,
        })
        return config


def accumulate_gradient_terms(value, accumulators, terms):
    """`value` unchanged; its backward pass adds `terms(value, gradient, axis)` (one value per
    index along `axis`) to the accumulator of each `(axis, accumulator)`; read the sums with
    `edgeprune.autodiff.take_accumulated` (on JAX they build up on the host)."""
    return accumulate_in_backward(value, accumulators, terms)


def apply_mask(weight, mask):
    """`weight` with zeros where `mask` is 0: +0.0, never the -0.0 a product gives for negative
    weights, whose bit pattern would break the zero runs that make .tflite files compress."""
    return np.where(mask > 0, weight, np.zeros((), weight.dtype))


def apply_mask_in_place(variables, mask):
    """Zeroes each of `variables` where `mask` (their common shape) is 0, on the backend's device
    (+0.0, as `apply_mask`): a round trip through NumPy costs twice as much on a kernel of
    millions of weights. The mask is compared once, and a Python 0.0 keeps each variable's dtype
    without a tensor of its own: JAX dispatches every eager operation by itself."""
    kept = ops.cast(mask, "bool")
    for variable in variables:
        variable.assign(ops.where(kept, variable.value, 0.0))


def pruned_nonzero(weight, mask):
    """Whether `weight` holds anything but 0 where `mask` is 0, as a boolean tensor."""
    return ops.any(ops.where(ops.cast(mask, "bool"), 0.0, weight.value))


def _plain(options):
    """Tuples as lists: what a `.keras` config round-trips."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


_TFMOT_DEFAULTS = {"block_size": (1, 1), "block_pooling_type": "AVG", "sparsity_m_by_n": None,
                   "pruning_scope": "layer"}


def leaf_layers(model):
    """Every layer of `model` that pruning treats as one unit, each once, in order: nested models
    and containers are walked into; a wrapper, and a layer the registry prunes as a whole (an
    LSTM with its cell, a Bidirectional), are units."""
    return model_rebuild.leaf_layers(model, is_leaf=lambda layer: isinstance(
        layer, PruneLowMagnitude) or layer_registry.is_registered(layer))


def pruning_wrappers(model):
    """Every `PruneLowMagnitude` layer inside `model`, nested models included, each once."""
    return [layer for layer in leaf_layers(model) if isinstance(layer, PruneLowMagnitude)]
