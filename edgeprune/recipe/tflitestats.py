"""What a `.tflite` file holds, read from the flatbuffer alone (no TensorFlow, no interpreter):
sizes, inputs and outputs, operators and the sparsity of every stored kernel.

Used by `edgeprune inspect model.tflite`, which therefore answers at once.

>>> stats = tflite_stats("runs/quickstart/model.tflite")  # doctest: +SKIP
>>> print(format_tflite_stats(stats))                      # doctest: +SKIP
"""

import collections
import gzip
import os

from device_bench.flatbuffer import read_model, weight_tensors


def tflite_stats(path):
    """A JSON-ready dict: file, raw and gzip bytes, inputs, outputs, operator counts, kernels."""
    data, model = read_model(path)
    graph = model.subgraphs[0]

    def tensors(indices):
        return [{"name": graph.tensors[i].name, "shape": list(graph.tensors[i].shape),
                 "dtype": graph.tensors[i].dtype} for i in indices if i >= 0]

    operators = collections.Counter(op.name for sub in model.subgraphs for op in sub.operators)
    kernels = weight_tensors(data)
    kernel_size = sum(_size(k.shape) for k in kernels)
    zeros = sum(k.sparsity * _size(k.shape) for k in kernels)
    return {"file": os.fspath(path), "raw_bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=9)),
            "subgraphs": len(model.subgraphs), "inputs": tensors(graph.inputs),
            "outputs": tensors(graph.outputs), "operators": dict(operators),
            "kernel_sparsity": zeros / kernel_size if kernel_size else 0.0,
            "kernels": [{"name": k.name, "shape": list(k.shape), "dtype": k.dtype,
                         "sparsity": k.sparsity, "sparse_storage": k.sparse_storage}
                        for k in kernels]}


def format_tflite_stats(stats):
    """A plain-text summary of `tflite_stats`, totals first."""
    lines = [f"model {stats['file']}",
             f"size {_kib(stats['raw_bytes'])} raw, {_kib(stats['gzip_bytes'])} gzip; "
             f"kernel sparsity {stats['kernel_sparsity']:.1%}"]
    for kind in ("inputs", "outputs"):
        lines += [f"{kind[:-1]:<6} {t['name']}: {tuple(t['shape'])} {t['dtype']}"
                  for t in stats[kind]]
    lines.append("operators: " + ", ".join(f"{name} x{count}" if count > 1 else name
                                           for name, count in stats["operators"].items()))
    if stats["kernels"]:
        width = min(48, max(len(k["name"]) for k in stats["kernels"]))
        header = f"{'kernel':<{width}} {'shape':<18} {'dtype':<8} {'sparsity':>9}"
        lines += [header, "-" * len(header)]
        lines += [f"{k['name'][-width:]:<{width}} {str(tuple(k['shape'])):<18} {k['dtype']:<8} "
                  f"{k['sparsity']:>9.1%}" + (" (sparse storage)" if k["sparse_storage"] else "")
                  for k in stats["kernels"]]
    return "\n".join(lines)


def _size(shape):
    size = 1
    for dim in shape:
        size *= dim
    return size


def _kib(count):
    return f"{count / 1024:,.1f} KiB"
