"""Keras 3 models to TensorFlow Lite (LiteRT) flatbuffers, with post-training quantization.

`export_tflite` checks every argument before the converter runs, so a wrong call fails fast with a
`ValueError` that names the argument, and a failed export never leaves a partial file behind.
"""

import dataclasses
import itertools
import sys

import numpy as np

from device_bench.fileio import atomic_write
from edgeprune.quantize.provenance import mark_converted
from edgeprune.quantize.qat import is_quantize_aware, strip_quantization
from edgeprune.quantize.scratch import scratch_folder
from edgeprune.sparsity.strip import stripped
from edgeprune.tf_logs import quiet


@dataclasses.dataclass(frozen=True)
class QuantizeMode:
    """One `quantize=` mode of `export_tflite`, and the converter settings that make it.

    Attributes:
        calibrated: activation ranges come from representative data.
        supported_types: `tf.` dtype names for the converter's `target_spec.supported_types`.
        supported_ops: the `tf.lite.OpsSet` name the converter is restricted to, if any.
        int8_io: whether the model's inputs and outputs can be int8 (`int8_io=True`).
        sparse_storage: whether `sparse_storage=True` gives a model LiteRT can run.
    """

    calibrated: bool = False
    supported_types: tuple = ()
    supported_ops: str = None
    int8_io: bool = False
    sparse_storage: bool = True


# The one table of modes: `None` is float32; any other mode quantizes (Optimize.DEFAULT).
MODES = {
    None: QuantizeMode(),
    "dynamic": QuantizeMode(),  # int8 weights, float activations
    "float16": QuantizeMode(supported_types=("float16",)),
    "int8": QuantizeMode(calibrated=True, supported_ops="TFLITE_BUILTINS_INT8", int8_io=True),
    # TF 2.21 writes sparse int16x8 models whose CONV_2D bias is not int32/int64, which the
    # runtime then refuses to prepare.
    "int16x8": QuantizeMode(calibrated=True, sparse_storage=False, supported_ops=(
        "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8")),
}
QUANTIZE_MODES = tuple(MODES)


def export_tflite(model, path=None, quantize=None, representative_data=None, int8_io=False,
                  sparse_storage=False, batch_size=1, input_shape=None,
                  num_calibration_samples=200):
    """Converts a Keras 3 model to a `.tflite` flatbuffer; returns its bytes, writes `path` if set.

    Args:
        model: a built Sequential, functional or subclassed Keras 3 model, with one input or
            several, on any Keras backend: a model on JAX or PyTorch is converted in a child
            process on the TensorFlow backend (see `on_tensorflow`), with the same result. A
            model from `quantize_model` (quantization-aware training) is stripped first and
            converted with full int8 quantization; one still wrapped for pruning is converted as
            `strip_pruning(model)` (which warns if pruning stopped before its target).
        path: where to write the flatbuffer. The file is replaced atomically: on any error an
            existing file keeps its old content and no new file appears.
        quantize: `None` (float32), `"dynamic"` (int8 weights, float activations), `"float16"`
            (float16 weights), `"int8"` (full integer) or `"int16x8"` (int16 activations, int8
            weights).
        representative_data: calibration inputs for `"int8"` and `"int16x8"`: a NumPy array of
            samples `(N, *input_shape)`, a `tf.data.Dataset` (batched or not, of inputs or
            `(inputs, labels)`), or a generator / iterable / zero-argument callable yielding such
            elements. Its values must be what `model.predict` receives. For a model with several
            inputs, give one array per input, as a list or tuple in the order of `model.inputs`
            or as a dict by input name: `[x1, x2]` or `{"image": x1, "meta": x2}` (N samples
            each); datasets and generators yield such elements.
        int8_io: with `quantize="int8"`, the model's input and output tensors are int8 as well
            (what a microcontroller wants); otherwise they stay float32 with QUANTIZE/DEQUANTIZE
            ops at the edges.
        sparse_storage: store weights with many zeros in TFLite's sparse encoding
            (`Optimize.EXPERIMENTAL_SPARSITY`, DENSIFY ops at run time). Smaller files; not for
            TFLite Micro, and LiteRT's XNNPACK delegate cannot run quantized sparse weights.
        batch_size: the fixed batch dimension of the converted model (edge inference runs one
            sample at a time, and static shapes need fewer ops); `None` keeps it dynamic.
        input_shape: the shape of one float32 sample, without the batch dimension; needed only
            for subclassed models (with one input), whose input Keras does not record.
        num_calibration_samples: at most this many representative samples are used.

    Returns:
        The flatbuffer as `bytes`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> xs = np.random.rand(16, 4).astype("float32")
    >>> tflite_bytes = export_tflite(model, quantize="int8", representative_data=xs)
    >>> tflite_bytes[4:8]
    b'TFL3'
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras 3 model, got {type(model).__name__}; wrap a "
                         "layer with keras.Sequential([keras.Input(shape), layer]).")
    model = stripped(model)
    if is_quantize_aware(model):
        if quantize not in (None, "int8"):
            raise ValueError(
                f"quantize={quantize!r} does not fit a quantization-aware model: it was trained "
                "for int8. Use quantize='int8' (or leave it None), or export "
                "strip_quantization(model) in another mode.")
        quantize = "int8"
    _check_mode(quantize, int8_io, sparse_storage)
    specs = input_specs(model, batch_size, input_shape)
    if is_quantize_aware(model):
        model = strip_quantization(model)
        if not model.built:  # a subclassed copy gets its (already built) layers on a first call
            model(np.zeros([1 if d is None else d for d in specs[0].shape], specs[0].dtype))
    samples = None
    if MODES[quantize].calibrated:
        samples = calibration_samples(representative_data, specs, num_calibration_samples)
    elif representative_data is not None:
        raise ValueError(
            f"representative_data is only used with the calibrated modes "
            f"{[m for m, mode in MODES.items() if mode.calibrated]}, not quantize={quantize!r}; "
            "drop it or choose a calibrated mode.")

    if keras.config.backend() == "tensorflow":
        tflite_bytes = _convert(model, specs, quantize, samples, int8_io, sparse_storage)
    else:
        from edgeprune.quantize import on_tensorflow

        tflite_bytes = on_tensorflow.export_tflite(
            model, samples, quantize=quantize, int8_io=int8_io, sparse_storage=sparse_storage,
            batch_size=batch_size, input_shape=input_shape)
    mark_converted(tflite_bytes)  # LiteRT may run these in this process (quantize/check.py)
    if path is not None:
        atomic_write(path, tflite_bytes)
    return tflite_bytes


def _check_mode(quantize, int8_io, sparse_storage):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize={quantize!r} is not a known mode; use one of {QUANTIZE_MODES}.")
    if int8_io and not MODES[quantize].int8_io:
        raise ValueError(
            f"int8_io=True needs quantize='int8' (got quantize={quantize!r}): only a full int8 "
            "model can take and return int8 tensors.")
    if sparse_storage and not MODES[quantize].sparse_storage:
        raise ValueError(
            f"sparse_storage=True is not supported with quantize={quantize!r}: the converter "
            "produces a model LiteRT cannot run. Use sparse_storage=False, or quantize='int8'.")


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


def _convert(model, specs, quantize, samples, int8_io, sparse_storage):
    import tensorflow as tf

    # quiet(): the SavedModel export and the converter log ~30 lines from C++ (shown with
    # EDGEPRUNE_VERBOSE=1; all of them if the conversion fails).
    with quiet(), scratch_folder("export") as saved_model_dir:
        # A SavedModel with an explicit signature fixes the batch size and freezes the weights;
        # it works for Sequential, functional and subclassed Keras 3 models alike.
        model.export(saved_model_dir, format="tf_saved_model", verbose=False,
                     input_signature=serving_signature(model, specs))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        mode = MODES[quantize]
        converter.optimizations = []
        if quantize is not None:
            converter.optimizations.append(tf.lite.Optimize.DEFAULT)
        if sparse_storage:
            converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
        if mode.supported_types:
            converter.target_spec.supported_types = [getattr(tf, t) for t in mode.supported_types]
        if samples is not None:
            converter.representative_dataset = lambda: (list(sample) for sample in samples)
        if mode.supported_ops:
            converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, mode.supported_ops)]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            return bytes(converter.convert())
        except Exception as err:  # the converter raises many types; the message is what matters
            raise ValueError(
                f"TFLite conversion failed with quantize={quantize!r}: {str(err).strip()[:2000]}"
            ) from err
