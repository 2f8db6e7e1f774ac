"""Microcontroller export: a `.tflite` model as a C source/header pair for a TFLite Micro project.

The array is 16-byte aligned (TFLite Micro reads the flatbuffer in place) and the header lists the
`MicroMutableOpResolver` lines the model needs, so the op resolver holds only the kernels used.
"""

import dataclasses
import os
import re

from device_bench.errors import ModelFileError
from device_bench.fileio import atomic_write
from edgeprune.quantize.check import ensure_loads, read_tflite

# Resolver methods whose names do not follow from CamelCasing the builtin operator's name.
_RESOLVER_NAME_EXCEPTIONS = {
    "BATCH_MATMUL": "BatchMatMul",
    "CUMSUM": "CumSum",
    "PADV2": "PadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def op_resolver_lines(tflite, resolver_name="op_resolver"):
    """C++ lines declaring and filling a `tflite::MicroMutableOpResolver` for this model.

    >>> import keras
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    >>> op_resolver_lines(export_tflite(model))[1:]
    ['op_resolver.AddFullyConnected();', 'op_resolver.AddSoftmax();']
    """
    _, model, name = read_tflite(tflite)
    return _resolver_lines(model, name, resolver_name)


def _resolver_lines(model, name, resolver_name="op_resolver"):
    ops = list(dict.fromkeys(op.name for sub in model.subgraphs for op in sub.operators))
    if "DENSIFY" in ops:
        raise ValueError(
            f"{name}: the model uses sparse storage (DENSIFY ops), which TFLite Micro cannot "
            "run: export it with export_tflite(..., sparse_storage=False) for a microcontroller.")
    custom = [op for op in ops if op.startswith("custom:")]
    if custom:
        raise ValueError(
            f"{name}: the model needs custom operators {custom}; TFLite Micro has no built-in "
            "kernels for them. Register your own with AddCustom(), or change the model to use "
            "builtins.")
    unknown = [op for op in ops if op.startswith("builtin_")]
    if unknown:
        raise ModelFileError(
            f"{name}: operator code {unknown[0].removeprefix('builtin_')} is not a builtin "
            "operator of the TFLite schema; the file is corrupted, or made for a newer runtime")
    lines = [f"static tflite::MicroMutableOpResolver<{len(ops)}> {resolver_name};"]
    lines += [f"{resolver_name}.Add{_resolver_method(op)}();" for op in ops]
    return lines


def _resolver_method(op_name):
    # str.title() keeps "2D", "V2" and "L2" as TFLite Micro spells them: CONV_2D -> Conv2D.
    return _RESOLVER_NAME_EXCEPTIONS.get(op_name) or "".join(
        word.title() for word in op_name.split("_"))


@dataclasses.dataclass
class MicroExport:
    """What `export_micro` wrote, and the op-resolver lines the firmware needs."""

    header_path: str
    source_path: str
    array_name: str
    op_resolver_lines: list

    def __str__(self):
        ops = sum(line.lstrip().startswith("op_resolver.Add") for line in self.op_resolver_lines)
        return "\n".join([f"{self.array_name}: {self.source_path} and {self.header_path}; "
                          f"{ops} op{'s' if ops != 1 else ''} to register:",
                          *("  " + line for line in self.op_resolver_lines)])


def export_micro(tflite, path, array_name=None, alignment=16):
    """Writes `path + ".h"` and `path + ".c"` holding the model as `const unsigned char` array.

    Args:
        tflite: the `.tflite` model (bytes or a path), from `export_tflite` -- for a
            microcontroller usually with `quantize="int8", int8_io=True` and no sparse storage.
            It is verified first, and must load in LiteRT (in a child process unless
            `export_tflite` produced it here); otherwise `ModelFileError`, and nothing is
            written.
        path: output path without extension, e.g. `"firmware/model_data"`.
        array_name: the C identifier of the array (its length is `<array_name>_len`); by default
            derived from the file name.
        alignment: byte alignment of the array; TFLite Micro needs 16.

    Returns:
        A `MicroExport`; its `op_resolver_lines` are also written as a comment in the header.

    >>> import keras, tempfile, os
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> out = export_micro(export_tflite(model), os.path.join(tempfile.mkdtemp(), "model_data"))
    >>> out.array_name, os.path.basename(out.header_path)
    ('model_data', 'model_data.h')
    """
    tflite_bytes, model, name = read_tflite(tflite)
    resolver = _resolver_lines(model, name)
    ensure_loads(tflite_bytes, model, name)  # no firmware from a model LiteRT refuses
    path = os.fspath(path)
    stem = os.path.basename(path)
    if array_name is None:
        array_name = re.sub(r"\W", "_", stem)
        array_name = array_name if _IDENTIFIER.match(array_name) else "model_" + array_name
    elif not _IDENTIFIER.match(array_name):
        raise ValueError(f"array_name={array_name!r} is not a valid C identifier; use letters, "
                         "digits and underscores, not starting with a digit.")
    if alignment < 1 or alignment & (alignment - 1):
        raise ValueError(f"alignment={alignment} must be a power of two (TFLite Micro needs 16).")
    header_path, source_path = path + ".h", path + ".c"
    atomic_write(header_path, _header(array_name, stem, len(tflite_bytes), resolver))
    atomic_write(source_path, _source(array_name, stem, tflite_bytes, alignment))
    return MicroExport(header_path, source_path, array_name, resolver)


def _header(array_name, stem, size, resolver):
    guard = re.sub(r"\W", "_", stem).upper() + "_H_"
    resolver_comment = "\n".join("//   " + line for line in resolver)
    return f"""// Generated by edgeprune: a {size}-byte TFLite model for TFLite Micro.
// Op resolver this model needs:
{resolver_comment}
#ifndef {guard}
#define {guard}

#ifdef __cplusplus
extern "C" {{
#endif

extern const unsigned char {array_name}[];
extern const unsigned int {array_name}_len;

#ifdef __cplusplus
}}
#endif

#endif  // {guard}
"""


def _source(array_name, stem, tflite_bytes, alignment):
    rows = []
    for start in range(0, len(tflite_bytes), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in tflite_bytes[start:start + 12]) + ",")
    body = "\n".join(rows)
    return f"""// Generated by edgeprune from a TFLite model; see {stem}.h.
#include "{stem}.h"

#if defined(_MSC_VER)
#define EDGEPRUNE_ALIGNED __declspec(align({alignment}))
#else
#define EDGEPRUNE_ALIGNED __attribute__((aligned({alignment})))
#endif

EDGEPRUNE_ALIGNED const unsigned char {array_name}[] = {{
{body}
}};
const unsigned int {array_name}_len = {len(tflite_bytes)};
"""
