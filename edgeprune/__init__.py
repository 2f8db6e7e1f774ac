"""edgeprune: Keras 3 pruning, channel shrinking, quantization and TFLite export for edge devices.

Names follow TensorFlow Model Optimization's pruning API, so a tfmot user migrates by changing an
import: `import edgeprune as ep` in place of `tfmot.sparsity.keras`.

Packages, lowest first (a package imports only those before it): `model` (copying models, naming
weights, costs), `sparsity` (the pruning core), `structured` (channels), `choose` and `quantize`,
`recipe`, then the CLI. `device_bench` stands alone.
"""

__version__ = "0.1.0"

# `import edgeprune` is instant: the names below are imported on first use (PEP 562's module
# `__getattr__`), all together, so every registry (granularities, criteria) is complete whichever
# name comes first. TensorFlow's import, whenever it comes, runs with its C++ log lines
# silenced (`edgeprune.tf_logs`).
from edgeprune import tf_logs as _tf_logs
from edgeprune.lazy import lazy_api

_tf_logs.install_import_hook()

# Public name -> module, grouped by package.
_EXPORTS = {
    "edgeprune.data": ("load_digits", "load_mnist1d"),
    # --- pruning core ---
    "edgeprune.sparsity.callbacks": ("PruningSummaries", "UpdatePruningStep"),
    "edgeprune.sparsity.controller": ("PruningController",),
    "edgeprune.sparsity.distributed": ("BackupAndRestore", "is_first_process",
                                       "multi_worker_strategy", "process_count", "process_index",
                                       "process_share", "start_data_parallel"),
    "edgeprune.sparsity.granularity": ("Granularity", "register_granularity"),
    "edgeprune.sparsity.layer_registry": ("PrunableLayer", "prunable_weights"),
    "edgeprune.sparsity.policy": ("PruneForLatencyOnXNNPack",),
    "edgeprune.sparsity.prune": ("prune_low_magnitude", "prune_scope"),
    "edgeprune.sparsity.schedules": ("ConstantSparsity", "PolynomialDecay", "PruningSchedule"),
    "edgeprune.sparsity.strip": ("sparsity_report", "strip_pruning"),
    "edgeprune.sparsity.wrapper": ("MissingPruningStepError", "PruneLowMagnitude"),
    # --- structured pruning ---
    "edgeprune.structured": ("ChannelCriterion", "ChannelGraph", "ShrinkReport", "channel_scores",
                             "prune_channels", "register_channel_criterion",
                             "register_channel_rule", "select_channels", "shrink",
                             "shrink_report"),
    # --- quantization and export ---
    "edgeprune.quantize.export": ("QUANTIZE_MODES", "export_tflite"),
    "edgeprune.quantize.micro": ("export_micro", "op_resolver_lines"),
    "edgeprune.quantize.onnx_export": ("OnnxExport", "export_onnx"),
    "edgeprune.quantize.qat": ("QuantizeAnnotate", "QuantizeWrapper", "quantize_annotate_layer",
                               "quantize_annotate_model", "quantize_apply", "quantize_model",
                               "strip_quantization"),
    "edgeprune.quantize.check": ("run_tflite", "size_report", "validate_tflite"),
    # The one error for a model file that cannot be read or is not a valid model (a ValueError).
    "device_bench.errors": ("ModelFileError",),
    # --- choosing sparsity ---
    "edgeprune.choose.allocation": ("Allocation", "allocate", "apply_channel_allocation",
                                    "with_target"),
    "edgeprune.choose.heuristics": ("global_magnitude_allocation", "uniform_allocation"),
    "edgeprune.choose.iterative": ("ImpResult", "ImpRound", "RewindCheckpoint",
                                   "iterative_magnitude_pruning", "layer_weights",
                                   "rewind_weights"),
    "edgeprune.choose.sensitivity": ("SensitivityTable", "sensitivity_scan"),
    "edgeprune.choose.latency": ("LatencyModel", "measure_latency_model"),
    "edgeprune.choose.latency_plan": ("plan_for_latency", "shrunk_latency", "measure_tflite_ms"),
}

__all__ = lazy_api(globals(), _EXPORTS, all_at_once=True)
