"""Calling a layer with some of its weights replaced for one call: how the pruning wrapper applies
masks and the QAT wrapper fake-quantizes kernels, without re-implementing any layer's forward
pass."""

import keras

from edgeprune.model.keras_internals import get_stateless_scope


def call_with_weights(layer, replacements, *args, **kwargs):
    """`layer(*args, **kwargs)` computed with each `(variable, value)` of `replacements` read as
    `value`; the variables themselves are not written. Other state the call updates (seed
    generators, moving statistics) and the losses it adds are handed on as a plain call would.

    Inside another stateless scope (JAX's training and prediction steps, `model.stateless_call`)
    the layer's other variables read that scope's values: a nested scope does not inherit them,
    and during JAX's `fit` the variables themselves hold no value."""
    outer = get_stateless_scope()
    replaced = {id(variable) for variable, _ in replacements}
    inherited = []
    if outer is not None:
        inherited = [(variable, outer.get_current_value(variable)) for variable in layer.variables
                     if id(variable) not in replaced]
        inherited = [(variable, value) for variable, value in inherited if value is not None]
    with keras.StatelessScope(state_mapping=[*replacements, *inherited],
                              collect_losses=outer is not None and outer.collect_losses) as scope:
        before = dict(scope.state_mapping)
        outputs = layer(*args, **kwargs)
    for variable in layer.variables:
        value = scope.get_current_value(variable)
        if id(variable) not in replaced and value is not None and value is not before.get(
                id(variable)):
            variable.assign(value)  # inside `outer`, recorded there as an update
    for loss in scope.losses:
        outer.add_loss(loss)
    return outputs
