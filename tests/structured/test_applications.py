"""shrink(prune_channels(model)) computes what the zeroed model computes, on keras.applications."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from edgeprune.structured import shrink_report

ARCHITECTURES = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0",
                 "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large",
                 "MobileNetV3Small", "ResNet50", "ResNet50V2", "VGG16", "Xception"]
INPUT_SIZES = {"InceptionV3": 75, "Xception": 71}  # their smallest inputs; 32 for the others
# Criteria and rankings rotate over the architectures, so each is exercised on several graphs.
CRITERIA = ("l1", "l2", "bn_gamma")
SCOPES = ("layer", "global")


@pytest.mark.parametrize("index, name", enumerate(ARCHITECTURES), ids=ARCHITECTURES)
def test_shrink_matches_zeroed_model(index, name, check_shrink):
    size = INPUT_SIZES.get(name, 32)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              classes=10, classifier_activation=None)
    inputs = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    zeroed, small = check_shrink(model, 0.5, inputs, criterion=CRITERIA[index % 3],
                                 pruning_scope=SCOPES[index % 2], round_to=2)
    report = shrink_report(zeroed, small)
    params, macs = report.total("params"), report.total("macs")
    assert params[1] < 0.8 * params[0] and macs[1] < 0.8 * macs[0]
    if name == "MobileNet":
        converter = tf.lite.TFLiteConverter.from_keras_model(small)
        assert len(converter.convert()) > 0
