"""Reading a `.tflite` flatbuffer: its operators and its constant tensors, without running it.

Uses the schema module that ships with `ai-edge-litert`, so no TensorFlow import is needed; shared
by edgeprune's size report and device_bench's micro target.
"""

import dataclasses
import os

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_")}
_TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items()
               if not name.startswith("_")}
_NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
                "int16": np.int16, "int32": np.int32, "int64": np.int64}


def read_bytes(tflite):
    """`tflite` as bytes: bytes-like objects pass through, anything else is read as a path."""
    if isinstance(tflite, (bytes, bytearray, memoryview)):
        return bytes(tflite)
    with open(os.fspath(tflite), "rb") as f:
        return f.read()


def parse(tflite_bytes):
    """The flatbuffer as the schema's object tree (`ModelT`)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))


def operator_name(model, op):
    """An operator's name, e.g. "CONV_2D"; custom operators as "custom:NAME"."""
    code = model.operatorCodes[op.opcodeIndex]
    # Codes above 127 live in builtinCode; older files only fill deprecatedBuiltinCode.
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"custom:{code.customCode.decode()}"
    return _BUILTIN_NAMES.get(builtin, f"builtin_{builtin}")


def operator_names(tflite):
    """The distinct operators of all subgraphs, in order of first use, e.g. `["CONV_2D", ...]`.

    Custom operators appear as `"custom:NAME"`.
    """
    model = parse(read_bytes(tflite))
    names = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = operator_name(model, op)
            if name not in names:
                names.append(name)
    return names


@dataclasses.dataclass
class WeightTensor:
    """A constant tensor of rank >= 2 (a kernel) as stored in the flatbuffer.

    `sparsity` is the fraction of elements that are zero, read from the stored values;
    `sparse_storage` says whether the tensor uses TFLite's sparse encoding.
    """

    name: str
    shape: tuple
    dtype: str
    sparsity: float
    sparse_storage: bool


def weight_tensors(tflite):
    """The kernels of a `.tflite` model with the sparsity of their stored values."""
    model = parse(read_bytes(tflite))
    weights = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            dtype = _TYPE_NAMES.get(tensor.type)
            if data is None or tensor.shape is None or len(tensor.shape) < 2 \
                    or dtype not in _NUMPY_TYPES:
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), _NUMPY_TYPES[dtype])
            size = int(np.prod(tensor.shape))
            # Sparse encoding stores only (blocks of) non-zeros: count them against the full size.
            nonzero = np.count_nonzero(values != _zero_value(tensor, values))
            weights.append(WeightTensor(
                name=tensor.name.decode(), shape=tuple(int(d) for d in tensor.shape), dtype=dtype,
                sparsity=1.0 - nonzero / size, sparse_storage=tensor.sparsity is not None))
    return weights


def _zero_value(tensor, values):
    """The stored value that means 0.0: the zero point for per-tensor quantization, else 0."""
    quantization = tensor.quantization
    zero_points = None if quantization is None else quantization.zeroPoint
    if zero_points is not None and len(zero_points) == 1 and tensor.sparsity is None:
        return values.dtype.type(zero_points[0])
    # Per-channel weight quantization in TFLite is symmetric: every zero point is 0.
    return values.dtype.type(0)
