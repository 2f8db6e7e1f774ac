"""A registered subclassed model for tests/backends/test_subclassed_export.py.

`subclassed_export.py` imports it as the top-level module `subclassed_model`, found through its
own folder on `sys.path`: the TensorFlow child that converts the model imports it only if it is
given the caller's `sys.path`.
"""

import keras


@keras.saving.register_keras_serializable(package="edgeprune_tests")
class TinyClassifier(keras.Model):
    """Flatten -> Dense(units) -> Dense(10), written as a subclass."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.head = keras.layers.Dense(10)

    def call(self, inputs):
        return self.head(self.hidden(self.flatten(inputs)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
