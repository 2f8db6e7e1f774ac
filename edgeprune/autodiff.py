"""The one place edgeprune uses the backend's automatic differentiation directly.

Gradient channel criteria (Taylor) need two things from it: terms computed in the training step's
backward pass and added up until the next pruning step (`accumulate_in_backward`, read with
`accumulated` and `take_accumulated`), and the loss gradients of batches of data for one-shot
pruning (`gradient_function`). The pruning wrapper takes one more thing from it: the masked
weight its layer computes with (`masked_weight`). Each backend implements them;
`keras.backend.backend()` picks one:

- TensorFlow: a `tf.custom_gradient` identity whose gradient assigns to the accumulator variable
  (in the step's graph, so a distribution strategy sums the replicas); `tf.GradientTape`.
- PyTorch: autograd runs eagerly, so a tensor hook adds to the accumulator in place;
  `torch.autograd.grad`.
- JAX: the training step is a pure jitted function whose variables are inputs and outputs, so a
  backward pass cannot write one. A `jax.custom_vjp` identity hands each batch's terms to the host
  with `jax.experimental.io_callback`; they add up there, beside the accumulator variable, until
  `take_accumulated` reads both. Loss gradients are `jax.grad` of `model.stateless_call`.

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
>>> function = gradient_function(model, model.layers[0].weights, "mse")
>>> [g.shape for g in function(np.ones((4, 3), "float32"), np.zeros((4, 1), "float32"))]
[(3, 1)]
"""

import functools
import threading
import weakref

import keras
import numpy as np
from keras import ops

from edgeprune.model.keras_internals import get_stateless_scope


def accumulate_in_backward(value, accumulators, terms):
    """`value` unchanged; its backward pass adds `terms(value, gradient, axis)` (one value per
    index along `axis`) to each `(axis, accumulator)` of `accumulators`. Non-finite terms count as
    0: a mixed-precision step whose scaled loss overflowed is skipped by the optimizer, and must
    not poison the sums either."""
    if not accumulators:
        return value
    return _backend().accumulate_in_backward(value, accumulators, terms)


def masked_weight(weight, mask, kept_masked=False):
    """What a pruning wrapper's layer computes with in place of the variable `weight`: its value
    times `mask` (0/1), or None where the variable itself now holds that (PyTorch, below).

    TensorFlow and JAX: the product, in the step's graph, so pruned weights get no gradient.
    With `kept_masked` the caller guarantees that the variable already holds 0 wherever `mask`
    does and stays so after each optimizer update (`PruningController(model, optimizer)` keeps
    that true: see `edgeprune.sparsity.optimizer_state`): the layer then reads the variable and
    only its gradient is masked. That saves the product's pass over the kernel forward and
    backward; the gradient's mask fuses into the optimizer's update under XLA (JAX).

    PyTorch runs each step eagerly, and there the product
    allocates a tensor of the kernel's size forward and backward (1.23x the step time of a CNN
    with a 4M-weight Dense kernel). Instead the variable is multiplied by its mask in place,
    outside autograd, whenever either changed since (an optimizer step, an assignment: their
    version counters tell), and the layer reads the variable. Gradients then reach pruned weights
    too, as in tfmot, and the next forward pass zeroes them again before they count; masks rank
    the masked values, so the drift never shows. A second forward pass before the backward one
    finds the variable unchanged and leaves it alone, which keeps autograd's saved tensors valid.
    Inside a stateless scope (`stateless_call`) the variable stands for a value of the caller's,
    which is never written: the product then."""
    return _backend().masked_weight(weight, mask, kept_masked)


def masks_gradients():
    """Whether `masked_weight(..., kept_masked=True)` masks the gradient (TensorFlow, JAX);
    PyTorch masks its variables in place whatever the flag, and gradients reach pruned weights."""
    return _backend().masks_gradients


def accumulated(accumulator):
    """What the backward passes added to `accumulator` since the last take, as a NumPy array."""
    return _backend().accumulated(accumulator)


def store_accumulated(accumulator):
    """Makes the variable `accumulator` hold `accumulated(accumulator)`, so that saving the model
    keeps the sums (on JAX they build up on the host; elsewhere the variable holds them already)."""
    _backend().store_accumulated(accumulator)


def take_accumulated(accumulator):
    """`accumulated(accumulator)`, after which the sum restarts at zero."""
    return _backend().take_accumulated(accumulator)


def gradient_function(model, variables, loss):
    """A function `(x, y) -> [gradient, ...]`: NumPy gradients of the mean `loss(y, model(x,
    training=False))` with respect to each of `variables` (zeros for a variable the loss
    does not reach). `loss` is a Keras loss name or a callable `loss(y_true, y_pred)`."""
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    return _backend().gradient_function(model, list(variables), loss_fn)


def _finite(terms):
    return ops.where(ops.isfinite(terms), terms, ops.zeros_like(terms))


def _mean_loss(loss_fn, y, outputs):
    return ops.mean(loss_fn(y, outputs))


def _product(weight, mask):
    return weight.value * ops.cast(mask, weight.dtype)


class _Variables:
    """Accumulators that the backward pass writes as variables (TensorFlow, PyTorch)."""

    def accumulated(self, accumulator):
        return ops.convert_to_numpy(accumulator)

    def store_accumulated(self, accumulator):
        pass

    def take_accumulated(self, accumulator):
        total = self.accumulated(accumulator)
        accumulator.assign(ops.zeros_like(accumulator))
        return total


class _TensorFlow(_Variables):
    masks_gradients = True

    def masked_weight(self, weight, mask, kept_masked):
        if not kept_masked:
            return _product(weight, mask)
        import tensorflow as tf

        mask_value = ops.cast(mask, weight.dtype)

        @tf.custom_gradient
        def gradient_masked(value):
            return tf.identity(value), lambda upstream: upstream * mask_value

        return gradient_masked(weight.value)

    def accumulate_in_backward(self, value, accumulators, terms):
        import tensorflow as tf

        @tf.custom_gradient
        def identity(x):
            def gradient(upstream):
                for axis, accumulator in accumulators:
                    accumulator.assign_add(_finite(terms(x, upstream, axis)))
                return upstream

            return tf.identity(x), gradient

        return identity(value)

    def gradient_function(self, model, variables, loss_fn):
        import tensorflow as tf

        def gradients(x, y):
            with tf.GradientTape() as tape:
                loss = _mean_loss(loss_fn, y, model(x, training=False))
            return [ops.convert_to_numpy(g) for g in tape.gradient(
                loss, [v.value for v in variables],
                unconnected_gradients=tf.UnconnectedGradients.ZERO)]

        return gradients


class _Torch(_Variables):
    masks_gradients = False

    def __init__(self):
        self.masked_versions = {}  # id(weight tensor) -> (its version, the mask's) once masked

    def masked_weight(self, weight, mask, kept_masked):
        import torch

        if get_stateless_scope() is not None:
            return _product(weight, mask)
        value, mask_value = weight.value, mask.value
        key = id(value)
        if self.masked_versions.get(key) != (value._version, mask_value._version):
            with torch.no_grad():
                value.mul_(mask_value)
            if key not in self.masked_versions:
                weakref.finalize(value, self.masked_versions.pop, key, None)
            self.masked_versions[key] = (value._version, mask_value._version)
        return None

    def accumulate_in_backward(self, value, accumulators, terms):
        if not value.requires_grad:  # a frozen weight, or a step under torch.no_grad()
            return value
        forward = value.detach()

        def add_terms(upstream):
            for axis, accumulator in accumulators:
                accumulator.assign_add(_finite(terms(forward, upstream, axis)))

        value.register_hook(add_terms)
        return value

    def gradient_function(self, model, variables, loss_fn):
        import torch

        def gradients(x, y):
            loss = _mean_loss(loss_fn, y, model(x, training=False))
            found = torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
            return [np.zeros(v.shape, v.dtype) if g is None else ops.convert_to_numpy(g)
                    for v, g in zip(variables, found)]

        return gradients


class _Jax:
    masks_gradients = True

    def __init__(self):
        self.pending = {}  # id(accumulator) -> NumPy sum handed over by io_callback
        self.lock = threading.Lock()  # unordered callbacks may run on several threads

    def masked_weight(self, weight, mask, kept_masked):
        if not kept_masked:
            return _product(weight, mask)
        return _jax_gradient_masking()(weight.value, ops.cast(mask, weight.dtype))

    def accumulate_in_backward(self, value, accumulators, terms):
        import jax
        from jax.experimental import io_callback

        @jax.custom_vjp
        def identity(x):
            return x

        def forward(x):
            return x, x

        def backward(x, upstream):
            for axis, accumulator in accumulators:
                io_callback(functools.partial(self._add, id(accumulator)), None,
                            _finite(terms(x, upstream, axis)))
            return (upstream,)

        identity.defvjp(forward, backward)
        for _, accumulator in accumulators:
            self._watch(accumulator)
        return identity(value)

    def _watch(self, accumulator):
        key = id(accumulator)
        with self.lock:
            if key not in self.pending:
                self.pending[key] = 0.0
                weakref.finalize(accumulator, self.pending.pop, key, None)

    def _add(self, key, batch):
        with self.lock:
            if key in self.pending:  # else its variable is gone
                self.pending[key] = self.pending[key] + np.asarray(batch)

    def accumulated(self, accumulator):
        import jax

        jax.effects_barrier()  # the steps dispatched so far have handed over their terms
        with self.lock:
            pending = self.pending.get(id(accumulator), 0.0)
        # The variable itself holds what a saved model (or a TensorFlow run) accumulated.
        return ops.convert_to_numpy(accumulator) + pending

    def store_accumulated(self, accumulator):
        accumulator.assign(self.take_accumulated(accumulator))

    def take_accumulated(self, accumulator):
        total = self.accumulated(accumulator)
        with self.lock:
            if id(accumulator) in self.pending:
                self.pending[id(accumulator)] = 0.0
        if ops.convert_to_numpy(accumulator).any():
            accumulator.assign(np.zeros(accumulator.shape, "float32"))
        return total

    def gradient_function(self, model, variables, loss_fn):
        import jax

        trainable = model.trainable_variables
        positions = {id(v): i for i, v in enumerate(trainable)}
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def all_gradients(trainable_values, x, y):
            def loss(values):
                outputs, _ = model.stateless_call(values, non_trainable, x, training=False)
                return _mean_loss(loss_fn, y, outputs)

            return jax.grad(loss)(trainable_values)

        def gradients(x, y):
            found = all_gradients([v.value for v in trainable], x, y)
            return [np.asarray(found[positions[id(v)]]) if id(v) in positions
                    else np.zeros(v.shape, v.dtype) for v in variables]

        return gradients


@functools.cache
def _jax_gradient_masking():
    """`f(value, mask)`: `value`, whose gradient is multiplied by `mask` (which gets none)."""
    import jax

    @jax.custom_vjp
    def gradient_masked(value, mask):
        return value

    def forward(value, mask):
        return value, mask

    def backward(mask, upstream):
        return upstream * mask, None

    gradient_masked.defvjp(forward, backward)
    return gradient_masked


_BACKENDS = {"tensorflow": _TensorFlow, "torch": _Torch, "jax": _Jax}
_instances = {}


def _backend():
    name = keras.backend.backend()
    if name not in _BACKENDS:
        raise RuntimeError(f"Gradient channel criteria need a backend that trains "
                           f"({', '.join(_BACKENDS)}); KERAS_BACKEND is {name!r}.")
    return _instances.setdefault(name, _BACKENDS[name]())
