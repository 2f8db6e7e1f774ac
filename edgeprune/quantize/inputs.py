"""A model's inputs as the converter sees them (name, shape, dtype), and the calibration data
checked and split into one array per input, for every input format `export_tflite` takes (an
array, a list or dict of arrays, a generator, a `tf.data.Dataset`)."""

import itertools
import sys

import numpy as np


class InputSpec:
    """Name, shape (batch included) and dtype of one model input."""

    def __init__(self, name, shape, dtype):
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def matches_sample(self, sample_shape):
        """Whether one sample (no batch dimension) fits the input shape; None dims take any size."""
        expected = self.shape[1:]
        return len(sample_shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, sample_shape))


def input_specs(model, batch_size=1, input_shape=None):
    """The `InputSpec` of each input of `model`, in the order of `model.inputs`.

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> [(spec.shape, spec.dtype.name) for spec in input_specs(model)]
    [((1, 4), 'float32')]
    """
    if input_shape is not None:
        return (InputSpec("input", (batch_size,) + tuple(input_shape), "float32"),)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "model has no recorded input (a subclassed model): pass input_shape=, the shape of one "
            "sample without the batch dimension, e.g. input_shape=(8, 8, 1).")
    return tuple(InputSpec(tensor.name, (batch_size,) + tuple(tensor.shape[1:]), tensor.dtype)
                 for tensor in inputs)


def serving_signature(model, specs):
    """The `input_signature` for `model.export`: one `keras.InputSpec` per input, in the
    structure the model is called with (a dict for a model built on a dict of inputs)."""
    import keras

    keras_specs = [keras.InputSpec(shape=spec.shape, dtype=spec.dtype.name) for spec in specs]
    if len(specs) == 1:
        return [keras_specs[0]]
    by_name = dict(zip([spec.name for spec in specs], keras_specs))
    return [keras.tree.map_structure(lambda tensor: by_name[tensor.name], model.input)]


def representative_samples(representative_data, sample_shape, dtype="float32", limit=200):
    """Normalises `representative_data` to a list of at most `limit` arrays `(1, *sample_shape)`.

    Every sample is checked here, before conversion, so that bad data fails with a `ValueError`
    instead of an error from inside the converter's calibration loop. `None` in `sample_shape`
    accepts any size. (`calibration_samples` does the same for a model with several inputs.)

    >>> import numpy as np
    >>> samples = representative_samples(np.zeros((5, 3), "float32"), (3,), limit=2)
    >>> len(samples), samples[0].shape
    (2, (1, 3))
    """
    spec = InputSpec("input", (1,) + tuple(sample_shape), dtype)
    return [sample[0] for sample in calibration_samples(representative_data, (spec,), limit)]


def calibration_samples(representative_data, specs, limit=200):
    """At most `limit` samples of `representative_data`, each a tuple with one array
    `(1, *sample_shape)` per input of `specs` (see `representative_samples`)."""
    if representative_data is None:
        raise ValueError(
            "representative_data is required for full-integer quantization: pass a few hundred "
            "typical inputs (a NumPy array, a tf.data.Dataset or a generator) so the converter can "
            "calibrate activation ranges.")
    samples = []
    for element in itertools.islice(_iterate_samples(representative_data, specs), limit):
        samples.append(tuple(_check_sample(value, spec, len(samples), several=len(specs) > 1)
                             for value, spec in zip(element, specs)))
    if not samples:
        raise ValueError("representative_data yielded no samples; it must hold at least one input.")
    return samples


def _iterate_samples(data, specs):
    """Yields single samples (no batch dimension), a tuple of one array per input, from any
    accepted representative-data form."""
    if len(specs) > 1 and _is_input_structure(data):
        yield from _split_element(data, specs)  # [x1, x2] or {"name": x1, ...}: N samples
        return
    if isinstance(data, np.ndarray):
        if data.ndim != len(specs[0].shape):
            raise ValueError(
                f"representative_data has shape {data.shape}; the model expects an array of "
                f"samples with shape (N, {', '.join(map(str, specs[0].shape[1:]))}).")
        yield from ((sample,) for sample in data)
        return
    if _is_tf_dataset(data):
        data = data.as_numpy_iterator()
    elif callable(data):
        data = data()
    try:
        elements = iter(data)
    except TypeError:
        raise ValueError(
            f"representative_data of type {type(data).__name__} is not supported; use a NumPy "
            "array, a tf.data.Dataset, or a generator of input arrays.") from None
    for element in elements:
        # tfmot-style generators yield [x]; datasets often yield (x, y): the input comes first.
        if isinstance(element, (list, tuple)) and not element:
            raise ValueError("representative_data yielded an empty list or tuple; yield the "
                             "input array.")
        if len(specs) == 1:
            if isinstance(element, (list, tuple)):
                element = element[0]
        elif isinstance(element, (list, tuple)) and _is_input_structure(element[0]):
            element = element[0]  # ((x1, x2), y)
        yield from _split_element(element, specs)


def _is_input_structure(value):
    return isinstance(value, dict) or (isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(item, np.ndarray) or hasattr(item, "shape") for item in value))


def _split_element(element, specs):
    """The samples of one element: one value per input (a dict by input name, or a sequence in
    input order), each a single sample or a batch."""
    if len(specs) == 1:
        values = [np.asarray(element)]
    elif isinstance(element, dict):
        missing = [spec.name for spec in specs if spec.name not in element]
        if missing:
            raise ValueError(
                f"representative_data has no input named {missing[0]!r}; the model's inputs are "
                f"{[spec.name for spec in specs]} (dict keys) or give a list in that order.")
        values = [np.asarray(element[spec.name]) for spec in specs]
    elif isinstance(element, (list, tuple)) and len(element) == len(specs):
        values = [np.asarray(value) for value in element]
    else:
        raise ValueError(
            f"representative_data: the model has {len(specs)} inputs "
            f"{[spec.name for spec in specs]}; give one array per input, as a list in that order "
            "or a dict by name (or yield such elements).")
    batched = [value.ndim == len(spec.shape) for value, spec in zip(values, specs)]
    if not any(batched):
        yield tuple(values)
        return
    counts = {len(value) for value, is_batch in zip(values, batched) if is_batch}
    if not all(batched) or len(counts) != 1:
        raise ValueError(
            f"representative_data: the inputs {[spec.name for spec in specs]} hold different "
            f"numbers of samples (shapes {[value.shape for value in values]}); give each input "
            "the same N samples.")
    yield from zip(*values)


def _is_tf_dataset(data):
    tf = sys.modules.get("tensorflow")  # a Dataset exists only once TensorFlow is imported
    return tf is not None and isinstance(data, tf.data.Dataset)


def _check_sample(sample, spec, position, several=False):
    sample = np.asarray(sample)
    where = f"representative_data sample {position}" + (f", input {spec.name!r}," if several
                                                         else "")
    if not spec.matches_sample(sample.shape):
        raise ValueError(
            f"{where} has shape {sample.shape}, but the model input expects samples of shape "
            f"{spec.shape[1:]} (None = any size); reshape the data to the model's input.")
    if np.issubdtype(spec.dtype, np.floating) and not np.issubdtype(sample.dtype, np.floating):
        raise ValueError(
            f"{where} has dtype {sample.dtype}, but the model input is {spec.dtype}; preprocess "
            "it as for model.predict (e.g. x.astype('float32') / 255) so calibration sees the "
            "real value range.")
    return sample.astype(spec.dtype)[None]
