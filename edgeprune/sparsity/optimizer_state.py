"""Which optimizers keep a pruned weight at zero by themselves, and the state that makes them.

A pruned weight whose gradient is masked to 0 stays 0 under SGD, Adam and the other optimizers
below, provided its per-weight state (momentum, velocity, accumulator: their *slots*) is 0 too:
each of their updates is elementwise and moves a weight by a function of its gradient and its
slots that is 0 at 0 (and weight decay scales 0 to 0). `PruningController` uses that to train
without multiplying every kernel by its mask at each step: it zeroes the slots of the weights a
mask update prunes, and the wrappers mask only the gradient (`edgeprune.autodiff.masked_weight`).

Other optimizers are not listed because one of their updates moves a weight whose gradient is 0:
Muon orthogonalizes a whole matrix's momentum, schedule-free AdamW averages two sequences, FTRL
computes the weight from its slots, and an optimizer with `use_ema` swaps in averaged weights.
With them (and with any subclass of the user's, whose update may differ) the wrappers keep the
product.

>>> import keras
>>> keeps_pruned_weights_at_zero(keras.optimizers.Adam()), keeps_pruned_weights_at_zero(
...     keras.optimizers.Muon())
(True, False)
"""

import keras

from edgeprune.model import keras_internals as internals

# Optimizer class -> the attributes holding its per-weight slot lists, indexed as its
# `trainable_variables` (a list the optimizer did not create, e.g. SGD's momentums at momentum=0,
# is skipped).
ZERO_KEEPING_OPTIMIZERS = {
    keras.optimizers.SGD: ("momentums",),
    keras.optimizers.Adam: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.AdamW: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.Adamax: ("_m", "_u"),
    keras.optimizers.Nadam: ("_momentums", "_velocities"),
    keras.optimizers.RMSprop: ("_velocities", "_momentums", "_average_gradients"),
    keras.optimizers.Adagrad: ("_accumulators",),
    keras.optimizers.Adadelta: ("_accumulated_grads", "_accumulated_delta_vars"),
    keras.optimizers.Lion: ("_momentums",),
    keras.optimizers.Lamb: ("_momentums", "_velocities"),
}


def inner_optimizer(optimizer):
    """The optimizer that updates the weights: a `LossScaleOptimizer`'s inner one."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def keeps_pruned_weights_at_zero(optimizer):
    """Whether `optimizer` leaves a weight at 0 while its gradient and its slots are 0."""
    optimizer = inner_optimizer(optimizer)
    return _listed_class(optimizer) is not None and not optimizer.use_ema


def _listed_class(optimizer):
    """The listed class `optimizer` is an instance of, if Keras itself defined its class (on
    PyTorch `keras.optimizers.Adam()` makes a subclass of Adam's own); None for others."""
    if not type(optimizer).__module__.startswith("keras."):
        return None
    return next((cls for cls in type(optimizer).__mro__ if cls in ZERO_KEEPING_OPTIMIZERS), None)


def weight_slots(optimizer, variable):
    """The state `optimizer` (a zero-keeping one) keeps for `variable`, which must be 0 where the
    variable is pruned for it to stay 0. Before the optimizer is built there is none."""
    optimizer = inner_optimizer(optimizer)
    return internals.optimizer_slots(optimizer, variable,
                                     ZERO_KEEPING_OPTIMIZERS[_listed_class(optimizer)])
