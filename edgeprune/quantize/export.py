"""Keras 3 models to TensorFlow Lite (LiteRT) flatbuffers, with post-training quantization.

`export_tflite` checks every argument before the converter runs, so a wrong call fails fast with a
`ValueError` that names the argument, and a failed export never leaves a partial file behind.
"""

import dataclasses

import numpy as np

from device_bench.fileio import atomic_write
from edgeprune.quantize.inputs import calibration_samples, input_specs, serving_signature
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
