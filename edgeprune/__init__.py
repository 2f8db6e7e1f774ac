"""edgeprune: Keras 3 pruning, channel shrinking, quantization and TFLite export for edge devices.

Names follow TensorFlow Model Optimization's pruning API, so a tfmot user migrates by changing an
import: `import edgeprune as ep` in place of `tfmot.sparsity.keras`.

Packages, lowest first (a package imports only those before it): `model` (copying models, naming
weights, costs), `sparsity` (the pruning core), `structured` (channels), `choose` and `quantize`,
`recipe`, then the CLI. `device_bench` stands alone.
"""

__version__ = "0.1.0"

from edgeprune.data import load_digits

# --- pruning core ---
from edgeprune.sparsity.callbacks import PruningSummaries, UpdatePruningStep
from edgeprune.sparsity.controller import PruningController
from edgeprune.sparsity.granularity import Granularity, register_granularity
from edgeprune.sparsity.layer_registry import prunable_weights
from edgeprune.sparsity.policy import PruneForLatencyOnXNNPack
from edgeprune.sparsity.prune import prune_low_magnitude
from edgeprune.sparsity.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from edgeprune.sparsity.strip import sparsity_report, strip_pruning
from edgeprune.sparsity.wrapper import PruneLowMagnitude

# --- structured pruning ---
from edgeprune.structured import (ChannelCriterion, ChannelGraph, ShrinkReport, channel_scores,
                                  prune_channels, register_channel_criterion,
                                  register_channel_rule, select_channels, shrink, shrink_report)

# --- quantization and export ---
from edgeprune.quantize.export import QUANTIZE_MODES, export_tflite
from edgeprune.quantize.micro import export_micro, op_resolver_lines
from edgeprune.quantize.qat import (QuantizeAnnotate, QuantizeWrapper, quantize_annotate_layer,
                                    quantize_annotate_model, quantize_apply, quantize_model,
                                    strip_quantization)
from edgeprune.quantize.check import run_tflite, size_report, validate_tflite

# --- choosing sparsity ---
from edgeprune.choose.allocation import (Allocation, allocate, apply_channel_allocation,
                                         global_magnitude_allocation, uniform_allocation,
                                         with_target)
from edgeprune.choose.iterative import (ImpResult, ImpRound, RewindCheckpoint,
                                        iterative_magnitude_pruning, layer_weights, rewind_weights)
from edgeprune.choose.sensitivity import SensitivityTable, sensitivity_scan

__all__ = [
    "load_digits",
    "PruningSummaries", "UpdatePruningStep", "PruningController", "Granularity",
    "register_granularity", "prunable_weights", "PruneForLatencyOnXNNPack",
    "prune_low_magnitude", "ConstantSparsity", "PolynomialDecay", "PruningSchedule",
    "sparsity_report", "strip_pruning", "PruneLowMagnitude",
    "ChannelCriterion", "ChannelGraph", "ShrinkReport", "channel_scores", "prune_channels",
    "register_channel_criterion", "register_channel_rule", "select_channels", "shrink",
    "shrink_report",
    "QUANTIZE_MODES", "export_tflite", "export_micro", "op_resolver_lines", "QuantizeAnnotate",
    "QuantizeWrapper", "quantize_annotate_layer", "quantize_annotate_model", "quantize_apply",
    "quantize_model", "strip_quantization", "run_tflite", "size_report", "validate_tflite",
    "Allocation", "allocate", "apply_channel_allocation", "global_magnitude_allocation",
    "uniform_allocation", "with_target", "ImpResult", "ImpRound", "RewindCheckpoint",
    "iterative_magnitude_pruning", "layer_weights", "rewind_weights", "SensitivityTable",
    "sensitivity_scan",
]
