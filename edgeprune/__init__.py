"""edgeprune: Keras 3 pruning, channel shrinking, quantization and TFLite export for edge devices.

Names follow TensorFlow Model Optimization's pruning API, so a tfmot user migrates by changing an
import: `import edgeprune as ep` in place of `tfmot.sparsity.keras`.
"""

__version__ = "0.1.0"

from edgeprune.data import load_digits

# --- pruning core ---
from edgeprune.callbacks import PruningSummaries, UpdatePruningStep
from edgeprune.controller import PruningController
from edgeprune.policy import PruneForLatencyOnXNNPack
from edgeprune.prune import prune_low_magnitude
from edgeprune.registry import prunable_weights
from edgeprune.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from edgeprune.strip import sparsity_report, strip_pruning
from edgeprune.wrapper import PruneLowMagnitude

# --- structured pruning ---
from edgeprune.structured import (ChannelGraph, ShrinkReport, channel_scores, prune_channels,
                                  select_channels, shrink, shrink_report)

# --- quantization and export ---
from edgeprune.export import QUANTIZE_MODES, export_tflite
from edgeprune.micro import export_micro, op_resolver_lines
from edgeprune.qat import (QuantizeAnnotate, QuantizeWrapper, quantize_annotate_layer,
                           quantize_annotate_model, quantize_apply, quantize_model,
                           strip_quantization)
from edgeprune.validate import run_tflite, size_report, validate_tflite

# --- choosing sparsity ---
from edgeprune.allocation import (Allocation, allocate, apply_channel_allocation,
                                  global_magnitude_allocation, uniform_allocation, with_target)
from edgeprune.imp import (ImpResult, ImpRound, RewindCheckpoint, iterative_magnitude_pruning,
                           layer_weights, rewind_weights)
from edgeprune.sensitivity import SensitivityTable, sensitivity_scan
