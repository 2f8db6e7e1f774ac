"""Keras 3 models to TensorFlow Lite (LiteRT) flatbuffers, with post-training quantization.

`export_tflite` checks every argument before the converter runs, so a wrong call fails fast with a
`ValueError` that names the argument, and a failed export never leaves a partial file behind.
"""

import dataclasses
import itertools

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
        model: a built Sequential, functional or subclassed Keras 3 model with one input. A model
            from `quantize_model` (quantization-aware training) is stripped first and converted
            with full int8 quantization; one still wrapped for pruning is converted as
            `strip_pruning(model)` (which warns if pruning stopped before its target).
        path: where to write the flatbuffer. The file is replaced atomically: on any error an
            existing file keeps its old content and no new file appears.
        quantize: `None` (float32), `"dynamic"` (int8 weights, float activations), `"float16"`
            (float16 weights), `"int8"` (full integer) or `"int16x8"` (int16 activations, int8
            weights).
        representative_data: calibration inputs for `"int8"` and `"int16x8"`: a NumPy array of
            samples `(N, *input_shape)`, a `tf.data.Dataset` (batched or not, of inputs or
            `(inputs, labels)`), or a generator / iterable / zero-argument callable yielding such
            elements. Its values must be what `model.predict` receives.
        int8_io: with `quantize="int8"`, the model's input and output tensors are int8 as well
            (what a microcontroller wants); otherwise they stay float32 with QUANTIZE/DEQUANTIZE
            ops at the edges.
        sparse_storage: store weights with many zeros in TFLite's sparse encoding
            (`Optimize.EXPERIMENTAL_SPARSITY`, DENSIFY ops at run time). Smaller files; not for
            TFLite Micro, and LiteRT's XNNPACK delegate cannot run quantized sparse weights.
        batch_size: the fixed batch dimension of the converted model (edge inference runs one
            sample at a time, and static shapes need fewer ops); `None` keeps it dynamic.
        input_shape: the shape of one float32 sample, without the batch dimension; needed only
            for subclassed models, whose input Keras does not record.
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
    input_spec = _input_spec(model, batch_size, input_shape)
    if is_quantize_aware(model):
        model = strip_quantization(model)
        if not model.built:  # a subclassed copy gets its (already built) layers on a first call
            model(np.zeros([1 if d is None else d for d in input_spec.shape], input_spec.dtype))
    samples = None
    if MODES[quantize].calibrated:
        samples = representative_samples(representative_data, input_spec.shape[1:],
                                         input_spec.dtype, num_calibration_samples)
    elif representative_data is not None:
        raise ValueError(
            f"representative_data is only used with the calibrated modes "
            f"{[m for m, mode in MODES.items() if mode.calibrated]}, not quantize={quantize!r}; "
            "drop it or choose a calibrated mode.")

    tflite_bytes = _convert(model, input_spec, quantize, samples, int8_io, sparse_storage)
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


class _InputSpec:
    """Shape (batch included) and dtype of a model's single input."""

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def matches_sample(self, sample_shape):
        """Whether one sample (no batch dimension) fits the input shape; None dims take any size."""
        expected = self.shape[1:]
        return len(sample_shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, sample_shape))


def _input_spec(model, batch_size, input_shape):
    if input_shape is not None:
        return _InputSpec((batch_size,) + tuple(input_shape), "float32")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "model has no recorded input (a subclassed model): pass input_shape=, the shape of one "
            "sample without the batch dimension, e.g. input_shape=(8, 8, 1).")
    if len(inputs) != 1:
        raise ValueError(
            f"model has {len(inputs)} inputs; export_tflite supports single-input models only.")
    return _InputSpec((batch_size,) + tuple(inputs[0].shape[1:]), inputs[0].dtype)


def representative_samples(representative_data, sample_shape, dtype="float32", limit=200):
    """Normalises `representative_data` to a list of at most `limit` arrays `(1, *sample_shape)`.

    Every sample is checked here, before conversion, so that bad data fails with a `ValueError`
    instead of an error from inside the converter's calibration loop. `None` in `sample_shape`
    accepts any size.

    >>> import numpy as np
    >>> samples = representative_samples(np.zeros((5, 3), "float32"), (3,), limit=2)
    >>> len(samples), samples[0].shape
    (2, (1, 3))
    """
    input_spec = _InputSpec((1,) + tuple(sample_shape), dtype)
    if representative_data is None:
        raise ValueError(
            "representative_data is required for full-integer quantization: pass a few hundred "
            "typical inputs (a NumPy array, a tf.data.Dataset or a generator) so the converter can "
            "calibrate activation ranges.")
    samples = []
    for element in itertools.islice(_iterate_samples(representative_data, input_spec), limit):
        samples.append(_check_sample(element, input_spec, len(samples)))
    if not samples:
        raise ValueError("representative_data yielded no samples; it must hold at least one input.")
    return samples


def _iterate_samples(data, input_spec):
    """Yields single samples (no batch dimension) from any accepted representative-data form."""
    if isinstance(data, np.ndarray):
        if data.ndim != len(input_spec.shape):
            raise ValueError(
                f"representative_data has shape {data.shape}; the model expects an array of "
                f"samples with shape (N, {', '.join(map(str, input_spec.shape[1:]))}).")
        yield from data
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
        if isinstance(element, (list, tuple)):
            if not element:
                raise ValueError("representative_data yielded an empty list or tuple; yield the "
                                 "input array.")
            element = element[0]
        element = np.asarray(element)
        if element.ndim == len(input_spec.shape):
            yield from element  # a batch
        else:
            yield element


def _is_tf_dataset(data):
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def _check_sample(sample, input_spec, position):
    sample = np.asarray(sample)
    if not input_spec.matches_sample(sample.shape):
        raise ValueError(
            f"representative_data sample {position} has shape {sample.shape}, but the model input "
            f"expects samples of shape {input_spec.shape[1:]} (None = any size); reshape the data "
            "to the model's input.")
    float_input = np.issubdtype(input_spec.dtype, np.floating)
    if float_input and not np.issubdtype(sample.dtype, np.floating):
        raise ValueError(
            f"representative_data sample {position} has dtype {sample.dtype}, but the model input "
            f"is {input_spec.dtype}; preprocess it as for model.predict (e.g. "
            "x.astype('float32') / 255) so calibration sees the real value range.")
    return sample.astype(input_spec.dtype)[None]


def _convert(model, input_spec, quantize, samples, int8_io, sparse_storage):
    import keras
    import tensorflow as tf

    # quiet(): the SavedModel export and the converter log ~30 lines from C++ (shown with
    # EDGEPRUNE_VERBOSE=1; all of them if the conversion fails).
    with quiet(), scratch_folder("export") as saved_model_dir:
        # A SavedModel with an explicit signature fixes the batch size and freezes the weights;
        # it works for Sequential, functional and subclassed Keras 3 models alike.
        model.export(saved_model_dir, format="tf_saved_model", verbose=False,
                     input_signature=[keras.InputSpec(shape=input_spec.shape,
                                                      dtype=input_spec.dtype.name)])
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
            converter.representative_dataset = lambda: ([sample] for sample in samples)
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
