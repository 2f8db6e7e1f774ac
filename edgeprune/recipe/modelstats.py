"""Per-layer parameters, sparsity and multiply-accumulates (MACs) of a Keras model.

Used by `edgeprune inspect` and by the run report. A pruned (wrapped) model is stripped first, so
the numbers describe the model that would be exported.

>>> import keras
>>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
...                           keras.layers.Flatten(), keras.layers.Dense(10)])
>>> stats = model_stats(model)
>>> stats["params"], stats["macs"]
(1490, 2736)
"""

import gzip

import numpy as np
from keras import ops

from edgeprune.model.cost import deployed_params, is_mac_weight, layer_macs
from edgeprune.sparsity.strip import stripped
from edgeprune.sparsity.wrapper import leaf_layers


def model_stats(model):
    """Totals and one row per layer with weights: params, zeros, kernel sparsity, MACs.

    `nonzero_macs` scales each layer's MACs by its kernel density: what a sparse kernel could
    skip (dense CPU kernels still do all `macs`). `weight_bytes` / `weight_gzip_bytes` are the
    raw and gzip-compressed size of all weights: what pruning saves once compressed.
    """
    model = stripped(model)
    rows = []
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        values = [ops.convert_to_numpy(w) for w in layer.weights]
        kernels = [v for w, v in zip(layer.weights, values) if is_mac_weight(w)]
        kernel_size = sum(k.size for k in kernels)
        kernel_zeros = sum(int(np.count_nonzero(k == 0)) for k in kernels)
        macs = layer_macs(layer)
        sparsity = kernel_zeros / kernel_size if kernel_size else 0.0
        rows.append({"name": layer.name, "type": type(layer).__name__,
                     "params": int(sum(v.size for v in values)),
                     "zeros": int(sum(np.count_nonzero(v == 0) for v in values)),
                     "kernel_sparsity": sparsity, "macs": macs,
                     "nonzero_macs": int(round(macs * (1 - sparsity)))})
    params = deployed_params(model)
    zeros = sum(row["zeros"] for row in rows)
    weight_bytes = b"".join(ops.convert_to_numpy(w).tobytes() for w in model.weights)
    return {"name": model.name, "params": int(params), "nonzero_params": int(params - zeros),
            "weight_bytes": len(weight_bytes),
            "weight_gzip_bytes": len(gzip.compress(weight_bytes, compresslevel=9)),
            "macs": sum(r["macs"] for r in rows),
            "nonzero_macs": sum(r["nonzero_macs"] for r in rows), "layers": rows}


def format_stats(stats):
    """A plain-text table of `model_stats` output, for the terminal."""
    header = f"{'layer':<32} {'type':<22} {'params':>10} {'sparsity':>9} {'MACs':>12}"
    lines = [f"model {stats['name']}", header, "-" * len(header)]
    for row in stats["layers"]:
        lines.append(f"{row['name'][:32]:<32} {row['type'][:22]:<22} {row['params']:>10,} "
                     f"{row['kernel_sparsity']:>9.1%} {row['macs']:>12,}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<55} {stats['params']:>10,} "
                 f"{1 - stats['nonzero_params'] / max(stats['params'], 1):>9.1%} "
                 f"{stats['macs']:>12,}")
    lines.append(f"nonzero parameters {stats['nonzero_params']:,}; "
                 f"MACs with zero weights skipped {stats['nonzero_macs']:,}")
    return "\n".join(lines)
