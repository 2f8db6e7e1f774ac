"""Model and data sources: .keras (safe_mode), keras.applications (weights=None), factories, npz."""

import keras
import numpy as np
import pytest

from edgeprune.recipe import load_recipe
from edgeprune.recipe.sources import load_data, load_model

DATA_FACTORY = '''
import numpy as np
import tensorflow as tf

def datasets(n=20, batch_size=8):
    x = np.ones((n, 4), "float32")
    y = np.arange(n) % 2
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds, ds.take(2)
'''


def test_keras_file_loads_with_safe_mode_and_lambda_layers_are_refused(write_recipe, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="out")])
    model.save(tmp_path / "plain.keras")
    loaded = load_model(load_recipe(write_recipe("model: {keras_file: plain.keras}\n")))
    np.testing.assert_array_equal(loaded.get_layer("out").kernel.numpy(),
                                  model.get_layer("out").kernel.numpy())

    unsafe = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    unsafe.save(tmp_path / "lambda.keras")
    recipe = load_recipe(write_recipe("model: {keras_file: lambda.keras}\n", "unsafe.yaml"))
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(recipe)


def test_application_is_built_without_downloading_weights(write_recipe):
    recipe = load_recipe(write_recipe("""
        model:
          application:
            name: MobileNetV2
            input_shape: [32, 32, 3]
            classes: 7
            args: {alpha: 0.35, classifier_activation: null}
            batchnorm_momentum: 0.9
        """))
    model = load_model(recipe)
    assert model.output.shape == (None, 7)
    assert model.layers[-1].activation is keras.activations.linear
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) > 10 and {l.momentum for l in norms} == {0.9}


def test_npz_and_dataset_factory_data(write_recipe, tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 3), "float32"), y_train=np.zeros(10),
             x_test=np.zeros((4, 3), "float32"), y_test=np.ones(4))
    data = load_data(load_recipe(write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 2}}
        data: {source: npz, path: d.npz, batch_size: 4}
        """)))
    assert data.steps_per_epoch == 3 and data.test_x.shape == (4, 3)
    assert data.calibration_samples(5).shape == (5, 3)

    (tmp_path / "data.py").write_text(DATA_FACTORY)
    data = load_data(load_recipe(write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 2}}
        data: {source: factory, factory: data.py:datasets, args: {n: 20, batch_size: 8}}
        """, "factory.yaml")))
    assert data.steps_per_epoch == 3  # 20 samples in batches of 8
    assert data.test_x.shape == (16, 4) and data.test_y.tolist() == [0, 1] * 8
    assert data.calibration_samples(10).shape == (10, 4)
