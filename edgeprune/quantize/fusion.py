"""Which layers disappear into their producer in a full-int8 TFLite graph (BatchNormalization or
ReLU after a Conv/Dense, ReLU after BN), and which layers the converter quantizes: QAT must
fake-quantize exactly the tensors that exist in the converted model."""

import keras

from edgeprune.model.keras_internals import inbound_nodes, producer as producer_of

# Layers whose kernels the converter quantizes per output channel (CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED; Conv1D converts to CONV_2D). Other layers with weights stay float in training.
KERNEL_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                 keras.layers.Dense)


def has_quantizable_kernel(layer):
    return isinstance(layer, KERNEL_LAYERS)


# Layers whose int8 TFLite op writes a tensor with its own scale (pooling, Flatten and Reshape keep
# their input's scale and need no fake quantization).
OUTPUT_QUANTIZED = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation,
                    keras.layers.LeakyReLU, keras.layers.Add, keras.layers.Subtract,
                    keras.layers.Multiply, keras.layers.Average, keras.layers.Concatenate,
                    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling1D)


def layers_fused_into_producer(model, unannotated=lambda layer: layer):
    """Names of layers whose only input comes from a layer TFLite fuses them with.

    A BatchNormalization or ReLU right after a Conv/Dense (or ReLU after BN) disappears into the
    producer's op in TFLite, so the producer's own output has no quantized tensor: such producers
    must not fake-quantize their outputs.
    """
    producers_of = {layer.name: _producer_names(layer) for layer in model.layers}
    consumers = {}
    for name, producers in producers_of.items():
        for producer in producers:
            consumers.setdefault(producer, []).append(name)
    by_name = {layer.name: unannotated(layer) for layer in model.layers}
    fused_producers = set()
    for name, users in consumers.items():
        if len(users) == 1 and name in by_name and _fuses_into(by_name[users[0]], by_name[name]):
            fused_producers.add(name)
    return fused_producers


def _fuses_into(consumer, producer):
    linear_kernel_layer = has_quantizable_kernel(producer) and producer.activation in (
        None, keras.activations.linear)
    if isinstance(consumer, keras.layers.BatchNormalization):
        return linear_kernel_layer
    is_relu = isinstance(consumer, keras.layers.ReLU) or (
        isinstance(consumer, keras.layers.Activation)
        and getattr(consumer.activation, "__name__", "") in ("relu", "relu6"))
    return is_relu and (linear_kernel_layer
                        or isinstance(producer, keras.layers.BatchNormalization))


def _producer_names(layer):
    names = []
    for node in inbound_nodes(layer):
        for tensor in node.input_tensors:
            operation = producer_of(tensor)
            if operation is not None:
                names.append(operation.name)
    return names
