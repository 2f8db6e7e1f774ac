"""shrink(prune_channels(model)) computes what the zeroed model computes, on keras.applications."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from edgeprune.structured import shrink_report

ARCHITECTURES = {
    # name: (input size, criterion, ranking): criteria and rankings rotate to cover them all.
    "MobileNet": (32, "l1", "per_layer"),
    "MobileNetV2": (32, "l2", "global"),
    "MobileNetV3Small": (32, "bn_gamma", "per_layer"),
    "MobileNetV3Large": (32, "l1", "global"),
    "ResNet50": (32, "bn_gamma", "global"),
    "ResNet50V2": (32, "l2", "per_layer"),
    "EfficientNetB0": (32, "l1", "per_layer"),
    "EfficientNetV2B0": (32, "bn_gamma", "global"),
    "DenseNet121": (32, "l1", "per_layer"),
    "VGG16": (32, "l2", "per_layer"),
    "Xception": (71, "l1", "global"),
    "InceptionV3": (75, "bn_gamma", "per_layer"),
    "ConvNeXtTiny": (32, "l1", "per_layer"),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_shrink_matches_zeroed_model(name, check_shrink):
    size, criterion, ranking = ARCHITECTURES[name]
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              classes=10, classifier_activation=None)
    inputs = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    zeroed, small = check_shrink(model, 0.5, inputs, criterion=criterion, ranking=ranking,
                                 round_to=2)
    report = shrink_report(zeroed, small)
    params, macs = report.total("params"), report.total("macs")
    assert params[1] < 0.8 * params[0] and macs[1] < 0.8 * macs[0]
    if name == "MobileNet":
        converter = tf.lite.TFLiteConverter.from_keras_model(small)
        assert len(converter.convert()) > 0
