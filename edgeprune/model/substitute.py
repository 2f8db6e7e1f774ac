"""Calling a layer with some of its weights replaced for one call: how the pruning wrapper applies
masks and the QAT wrapper fake-quantizes kernels, without re-implementing any layer's forward
pass."""

import keras


def call_with_weights(layer, replacements, *args, **kwargs):
    """`layer(*args, **kwargs)` computed with each `(variable, value)` of `replacements` read as
    `value`; the variables themselves are not written. Other state the call updates (seed
    generators, moving statistics) is written back as a plain call would."""
    with keras.StatelessScope(state_mapping=replacements) as scope:
        outputs = layer(*args, **kwargs)
    replaced = {id(variable) for variable, _ in replacements}
    for variable in layer.variables:
        if id(variable) not in replaced:
            value = scope.get_current_value(variable)
            if value is not None:
                variable.assign(value)
    return outputs
