"""Where a recipe's model and data come from: `.keras` files, keras.applications, factories, digits.

A `module:function` (or `path/to/file.py:function`) factory is imported only here, and only when
the recipe names it. `.keras` files load with `safe_mode=True` (no arbitrary code in lambdas).

>>> data = load_data(load_recipe("recipes/quickstart.yaml"))   # doctest: +SKIP
>>> data.test_x.shape                                           # doctest: +SKIP
(450, 8, 8, 1)
"""

import importlib
import importlib.util
import math
import os

import keras
import numpy as np

from edgeprune.data import load_digits
from edgeprune.model.keras_internals import all_sublayers
from edgeprune.model.saving import load_keras_file
from edgeprune.recipe.schema import RecipeError, did_you_mean
from edgeprune.sparsity.distributed import process_count, process_share


def import_factory(spec, folder):
    """The function named by `module:function` or `file.py:function` (relative to `folder`)."""
    module_name, _, function_name = spec.rpartition(":")
    if module_name.endswith(".py"):
        path = os.path.normpath(os.path.join(folder, module_name))
        module_spec = importlib.util.spec_from_file_location(
            "edgeprune_recipe_" + os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise RecipeError(f"factory {spec!r}: cannot import {module_name!r}: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise RecipeError(f"factory {spec!r}: {module_name} has no function {function_name!r}"
                          f"{did_you_mean(function_name, names)}")
    return function


def load_model(recipe):
    """The recipe's starting model (a new object each call)."""
    source = recipe["model"]
    if "keras_file" in source:
        return load_keras_file(recipe.resolve(source["keras_file"]))
    if "application" in source:
        app = source["application"]
        builder = getattr(keras.applications, app["name"])
        model = builder(weights=None, input_shape=tuple(app["input_shape"]),
                        classes=app["classes"], **app.get("args", {}))
        if "batchnorm_momentum" in app:
            # The applications' 0.99-0.999 lets the moving statistics, used at test time, lag
            # far behind on a small data set trained from scratch.
            for layer in all_sublayers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = app["batchnorm_momentum"]
        return model
    model = import_factory(source["factory"], recipe.folder)(**source.get("args", {}))
    if not isinstance(model, keras.Model):
        raise RecipeError(f"model.factory {source['factory']!r} returned "
                          f"{type(model).__name__}, not a Keras 3 model")
    return model


def sharing_processes():
    """How many processes feed each batch: JAX's under a recipe's `distribution:` (runs do not
    use TensorFlow's strategies, whatever `TF_CONFIG` says)."""
    return process_count() if keras.backend.backend() == "jax" else 1


class Data:
    """Training input for `fit`, the test split as arrays, and samples for calibration.

    `train` is either `(x, y)` NumPy arrays or a batched `tf.data.Dataset` of `(x, y)`.
    """

    def __init__(self, train, test_x, test_y, batch_size):
        self.train = train
        self.test_x = np.asarray(test_x, np.float32)
        self.test_y = np.asarray(test_y).reshape(-1)
        self.batch_size = batch_size

    @property
    def is_arrays(self):
        return isinstance(self.train, tuple)

    @property
    def steps_per_epoch(self):
        if self.is_arrays and sharing_processes() > 1:
            return len(self.train[0]) // self.batch_size  # see `process_share`
        if self.is_arrays:
            return math.ceil(len(self.train[0]) / self.batch_size)
        steps = int(self.train.cardinality())
        if steps < 0:
            raise RecipeError("data.factory: the training dataset has unknown or infinite length; "
                              "pruning schedules in epochs need a finite dataset "
                              "(use dataset.take(n) or schedule.unit: steps)")
        return steps

    def fit_arguments(self):
        """Keyword arguments for `model.fit`; with several processes, this one's share of every
        batch."""
        if sharing_processes() > 1:
            if not self.is_arrays:
                raise RecipeError("distribution: several processes need array data (data.source "
                                  "digits or npz), each process feeding its share of every "
                                  "batch; a data factory's dataset is not split")
            return {"x": process_share(self.train[0], self.batch_size),
                    "y": process_share(self.train[1], self.batch_size),
                    "batch_size": self.batch_size // sharing_processes(), "shuffle": True}
        if self.is_arrays:
            return {"x": self.train[0], "y": self.train[1], "batch_size": self.batch_size,
                    "shuffle": True}
        return {"x": self.train, "shuffle": False}  # a dataset shuffles itself (Keras warns)

    def training_samples(self, count):
        """Up to `count` training `(inputs, labels)` as arrays."""
        if self.is_arrays:
            return np.asarray(self.train[0][:count], np.float32), np.asarray(self.train[1][:count])
        xs, ys = [], []
        for x, y in self.train:
            xs.append(np.asarray(x, np.float32))
            ys.append(np.asarray(y))
            if sum(len(b) for b in xs) >= count:
                break
        return np.concatenate(xs)[:count], np.concatenate(ys)[:count]

    def calibration_samples(self, count):
        """Up to `count` training inputs: what the quantizer sees at inference time."""
        return self.training_samples(count)[0]


def load_data(recipe):
    """The recipe's data: bundled digits, an `.npz` file, or a factory of `tf.data.Dataset`s."""
    spec = recipe["data"]
    batch_size = spec["batch_size"]
    if spec["source"] == "digits":
        (x, y), (test_x, test_y) = load_digits(seed=recipe["seed"])
        return Data((x, y), test_x, test_y, batch_size)
    if spec["source"] == "npz":
        with np.load(recipe.resolve(spec["path"]), allow_pickle=False) as arrays:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
            if missing:
                raise RecipeError(f"data.path: {spec['path']} lacks arrays {sorted(missing)}; "
                                  "it needs x_train, y_train, x_test, y_test")
            return Data((arrays["x_train"], arrays["y_train"]), arrays["x_test"],
                        arrays["y_test"], batch_size)
    result = import_factory(spec["factory"], recipe.folder)(**spec.get("args", {}))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise RecipeError(f"data.factory {spec['factory']!r} must return (train_dataset, "
                          f"test_dataset), got {type(result).__name__}")
    train, test = result
    test_x, test_y = zip(*((np.asarray(x), np.asarray(y)) for x, y in test))
    return Data(train, np.concatenate(test_x), np.concatenate(test_y), batch_size)
