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


@pytest.mark.parametrize("name", ["ConvNeXtTiny", "MobileNetV3Small"])
def test_gradual_channel_pruning_trains_strips_and_shrinks_exactly(name):
    """The training path on graphs with LayerScale, masked LayerNormalization, squeeze-and-excite
    and hard-swish: wrap, train through pruning steps, strip, shrink."""
    import edgeprune as ep

    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10,
                                              classifier_activation=None)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 8)
    pruned = ep.prune_low_magnitude(model, structure="channels", round_to=2,
                                    pruning_schedule=ep.ConstantSparsity(0.5, 1, frequency=1))
    pruned.compile(keras.optimizers.SGD(1e-4),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[ep.UpdatePruningStep()])
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    params = shrink_report(final, small).total("params")
    assert params[1] < 0.5 * params[0]
    expected = np.asarray(final(x, training=False))
    assert np.abs(np.asarray(small(x, training=False)) - expected).max() <= \
        1e-4 * np.abs(expected).max()
