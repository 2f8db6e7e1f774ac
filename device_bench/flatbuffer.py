"""Reading a `.tflite` flatbuffer, verified as it is read: its operators and constant tensors.

Corrupted files are common (a cut-off copy, a bad SD card) and the generated flatbuffer code reads
without bounds checks, so this module reads the fields device_bench and edgeprune need through the
checked reader of `device_bench.flatbuffer_reader` instead: the header and file identifier, every
table and vector inside the file, every tensor, buffer and op-code index in range, every constant
buffer large enough for its tensor's shape and type. Anything wrong raises one ModelFileError
naming the file and the field. The work is bounded by a multiple of the file size, so no file makes
it loop. Needs numpy and the schema enums of `ai-edge-litert`, no TensorFlow.

>>> parse(b"PK\\x03\\x04" + bytes(60), "model.keras")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
device_bench.errors.ModelFileError: model.keras: not a TFLite model (file identifier b'\\x00...
"""

import dataclasses
import math
import os
import struct

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from device_bench.errors import ModelFileError
from device_bench.fileio import read_regular_file
from device_bench.flatbuffer_reader import Reader

MAX_MODEL_BYTES = 2 << 30  # flatbuffers address at most 2 GiB
FILE_IDENTIFIER = b"TFL3"
BYTES_NAME = "the .tflite bytes"  # how errors name a model given as bytes rather than a path
_HEADER_BYTES = 8  # uoffset of the root table, then the file identifier

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_")}
_TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items()
               if not name.startswith("_")}
# Bits per element of the types stored in fixed-size elements (string, resource and variant are
# not); sub-byte types are packed.
_TYPE_BITS = {"float32": 32, "float16": 16, "bfloat16": 16, "float64": 64, "int64": 64,
              "int32": 32, "int16": 16, "int8": 8, "int4": 4, "int2": 2, "uint64": 64,
              "uint32": 32, "uint16": 16, "uint8": 8, "uint4": 4, "bool": 8, "complex64": 64,
              "complex128": 128, "float8_e4m3fn": 8, "float8_e5m2": 8}
_NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
                "int16": np.int16, "int32": np.int32, "int64": np.int64}


@dataclasses.dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: str                 # "float32", "int8", ...
    data: np.ndarray | None    # the constant's stored bytes (uint8); None for activations
    sparse: bool               # stored in TFLite's sparse encoding
    shape_signature: tuple     # with -1 for dynamic dimensions; () if the file has none
    zero_points: tuple


@dataclasses.dataclass
class Operator:
    name: str                  # "CONV_2D", or "custom:NAME" for a custom operator
    inputs: tuple              # tensor indices; -1 for an omitted optional tensor
    outputs: tuple


@dataclasses.dataclass
class Subgraph:
    tensors: list
    operators: list
    inputs: tuple
    outputs: tuple


@dataclasses.dataclass
class Model:
    subgraphs: list


def read_model(tflite, max_bytes=MAX_MODEL_BYTES):
    """(bytes, verified Model) of a `.tflite` given as bytes or as a path.

    A path must name a regular file of at most `max_bytes`; errors name it.
    """
    if isinstance(tflite, (bytes, bytearray, memoryview)):
        data, name = bytes(tflite), BYTES_NAME
    else:
        name = os.fspath(tflite)
        data = read_regular_file(name, max_bytes, ModelFileError)
    return data, parse(data, name)


def read_bytes(tflite, max_bytes=MAX_MODEL_BYTES):
    """`tflite` as bytes, verified: bytes-like objects pass through, anything else is read as a
    path. ModelFileError says what is wrong with the file."""
    return read_model(tflite, max_bytes)[0]


def parse(tflite_bytes, name=BYTES_NAME):
    """The verified Model in `tflite_bytes`; ModelFileError naming `name` if anything is wrong."""
    data = bytes(tflite_bytes)
    _check_header(data, name)
    reader = Reader(data, name)
    root = reader.table(struct.unpack_from("<I", data)[0], "model")
    codes = [_operator_name(code) for code in root.tables(1, "operator_codes")]
    buffers = [_buffer_data(reader, buffer) for buffer in root.tables(4, "buffers")]
    subgraphs = [_subgraph(reader, subgraph, codes, buffers)
                 for subgraph in root.tables(2, "subgraphs")]
    if not subgraphs:
        reader.fail("model.subgraphs", "there are none")
    return Model(subgraphs)


def operator_names(tflite):
    """The distinct operators of all subgraphs, in order of first use, e.g. `["CONV_2D", ...]`.

    Custom operators appear as `"custom:NAME"`.
    """
    names = []
    for subgraph in read_model(tflite)[1].subgraphs:
        for op in subgraph.operators:
            if op.name not in names:
                names.append(op.name)
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
    weights = []
    for subgraph in read_model(tflite)[1].subgraphs:
        for tensor in subgraph.tensors:
            size = math.prod(tensor.shape)
            if tensor.data is None or len(tensor.shape) < 2 or size == 0 \
                    or tensor.dtype not in _NUMPY_TYPES:
                continue
            dtype = np.dtype(_NUMPY_TYPES[tensor.dtype])
            # Sparse encoding stores only (blocks of) non-zeros: count them against the full size.
            count = len(tensor.data) // dtype.itemsize if tensor.sparse else size
            values = np.frombuffer(tensor.data, dtype, count)
            nonzero = np.count_nonzero(values != _zero_value(tensor))
            weights.append(WeightTensor(name=tensor.name, shape=tensor.shape, dtype=tensor.dtype,
                                        sparsity=1.0 - int(nonzero) / size,
                                        sparse_storage=tensor.sparse))
    return weights


def _zero_value(tensor):
    """The stored value that means 0.0: the zero point for per-tensor quantization, else 0.

    A Python int, so a damaged file's out-of-range zero point compares instead of overflowing.
    """
    if len(tensor.zero_points) == 1 and not tensor.sparse:
        return tensor.zero_points[0]
    # Per-channel weight quantization in TFLite is symmetric: every zero point is 0.
    return 0


def _check_header(data, name):
    size = len(data)
    if size < _HEADER_BYTES + 8:
        raise ModelFileError(f"{name}: only {size} bytes, too short to be a .tflite model "
                             "(empty or truncated file); re-export the model")
    if data[4:8] != FILE_IDENTIFIER:
        raise ModelFileError(
            f"{name}: not a TFLite model (file identifier {data[4:8]!r}, expected "
            f"{FILE_IDENTIFIER!r}); pass a .tflite file, not a .keras/.h5/SavedModel")
    root = struct.unpack_from("<I", data)[0]
    if root % 4 or root + 4 > size:
        raise ModelFileError(f"{name}: corrupted flatbuffer (root table offset {root} is not an "
                             f"aligned position in the {size}-byte file); re-export the model")


def _operator_name(code):
    # Codes above 127 live in builtin_code; older files only fill deprecated_builtin_code.
    builtin = max(code.scalar(3, "<i", "builtin_code"),
                  code.scalar(0, "<b", "deprecated_builtin_code"))
    if builtin == schema.BuiltinOperator.CUSTOM:
        return "custom:" + code.string(1, "custom_code")
    return _BUILTIN_NAMES.get(builtin, f"builtin_{builtin}")


def _buffer_data(reader, buffer):
    """A buffer's bytes; models over 2 GiB keep them after the flatbuffer, at offset/size."""
    offset, size = buffer.scalar(1, "<Q", "offset"), buffer.scalar(2, "<Q", "size")
    if offset > 1:
        if offset + size > len(reader.data):
            reader.fail(f"{buffer.where}.offset", f"{size} bytes at offset {offset} run past the "
                                                  f"end of the {len(reader.data)}-byte file")
        return np.frombuffer(reader.data, np.uint8, size, offset)
    return buffer.vector(0, "u1", "data")


def _indices(reader, values, count, where):
    """`values` as a tuple, checked to be tensor indices (-1 marks an omitted optional tensor)."""
    bad = values[(values < -1) | (values >= count)]
    if len(bad):
        reader.fail(where, f"tensor index {int(bad[0])} is not one of the subgraph's {count} "
                           "tensors")
    return tuple(int(v) for v in values)


def _subgraph(reader, table, codes, buffers):
    tensors = [_tensor(reader, tensor, buffers) for tensor in table.tables(0, "tensors")]
    count = len(tensors)
    operators = []
    for op in table.tables(3, "operators"):
        code = op.scalar(0, "<I", "opcode_index")
        if code >= len(codes):
            reader.fail(f"{op.where}.opcode_index", f"operator code {code} is not one of the "
                                                    f"model's {len(codes)}")
        operators.append(Operator(
            codes[code],
            _indices(reader, op.vector(1, "<i4", "inputs"), count, f"{op.where}.inputs"),
            _indices(reader, op.vector(2, "<i4", "outputs"), count, f"{op.where}.outputs")))
    where = table.where
    return Subgraph(tensors, operators,
                    _indices(reader, table.vector(1, "<i4", "inputs"), count, f"{where}.inputs"),
                    _indices(reader, table.vector(2, "<i4", "outputs"), count, f"{where}.outputs"))


def _tensor(reader, table, buffers):
    where = table.where
    shape = tuple(int(d) for d in table.vector(0, "<i4", "shape"))
    type_code = table.scalar(1, "<b", "type")
    if type_code not in _TYPE_NAMES:
        reader.fail(f"{where}.type", f"{type_code} is not a TFLite tensor type")
    dtype = _TYPE_NAMES[type_code]
    index = table.scalar(2, "<I", "buffer")
    if index >= len(buffers):
        reader.fail(f"{where}.buffer", f"buffer {index} is not one of the model's {len(buffers)}")
    data = buffers[index] if len(buffers[index]) else None
    sparsity = table.table(6, "sparsity")
    sparse = sparsity is not None
    if sparse:
        _check_dense_sizes(reader, sparsity, shape)
    if data is not None and not sparse and dtype in _TYPE_BITS:
        if min(shape, default=0) < 0:
            reader.fail(f"{where}.shape", f"a constant with a negative dimension {list(shape)}")
        needed = (math.prod(shape) * _TYPE_BITS[dtype] + 7) // 8
        if len(data) < needed:
            reader.fail(where, f"buffer {index} holds {len(data)} bytes but shape {list(shape)} of "
                               f"{dtype} needs {needed}")
        reader.spend(needed, where)  # what weight_tensors will scan for this tensor
    quantization = table.table(4, "quantization")
    zero_points = () if quantization is None else tuple(
        int(z) for z in quantization.vector(3, "<i8", "zero_point"))
    return Tensor(name=table.string(3, "name"), shape=shape, dtype=dtype, data=data,
                  sparse=sparse, shape_signature=tuple(
                      int(d) for d in table.vector(7, "<i4", "shape_signature")),
                  zero_points=zero_points)


def _check_dense_sizes(reader, sparsity, shape):
    """A sparse tensor's dense dimensions cannot hold more than its elements (block sparsity splits
    dimensions, it keeps the count): a damaged file with a huge size would keep LiteRT's DENSIFY
    busy for hours."""
    sizes = [dim.scalar(1, "<i", "dense_size") for dim in sparsity.tables(2, "dim_metadata")
             if dim.scalar(0, "<b", "format") == schema.DimensionType.DENSE]
    if min(sizes, default=0) < 0 or math.prod(sizes) > math.prod(shape):
        reader.fail(f"{sparsity.where}.dim_metadata", f"dense sizes {sizes} do not fit the "
                                                      f"{math.prod(shape)} elements of shape "
                                                      f"{list(shape)}")
