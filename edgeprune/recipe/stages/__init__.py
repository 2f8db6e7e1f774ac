"""The built-in stages of a recipe run, one module each, each a thin layer over edgeprune's and
device_bench's public API; importing this package registers them in order.

| stage       | runs when                   | calls                                                  |
|-------------|-----------------------------|--------------------------------------------------------|
| `baseline`  | always                      | the model source, `fit` when `training.epochs` > 0     |
| `allocate`  | `pruning.allocation`        | `ep.sensitivity_scan` + `ep.allocate`, `ep.uniform_allocation`, `ep.global_magnitude_allocation` |
| `prune`     | a `pruning` section         | `ep.prune_low_magnitude`, `fit` + `ep.UpdatePruningStep`; `ep.iterative_magnitude_pruning` (`pruning.iterative`) |
| `strip`     | a `pruning` section         | `ep.strip_pruning`, `ep.shrink` (`strip.shrink`)       |
| `qat`       | `quantize.aware_training`   | `ep.quantize_model` (sparsity kept), `fit`             |
| `convert`   | always                      | `ep.export_tflite`, `ep.size_report`, `ep.validate_tflite`, `ep.export_micro` |
| `benchmark` | a `benchmark` section       | `device_bench.benchmark`                               |
| `report`    | always                      | `edgeprune.recipe.report.write_report`                 |

>>> [stage.name for stage in enabled_stages(load_recipe("recipes/quickstart.yaml"))]  # doctest: +SKIP
['baseline', 'prune', 'strip', 'convert', 'benchmark', 'report']
"""

# Imported in run order: each module registers its stage after the ones before it.
from edgeprune.recipe.stages import baseline  # noqa: F401  isort: skip
from edgeprune.recipe.stages import allocate  # noqa: F401  isort: skip
from edgeprune.recipe.stages import prune  # noqa: F401  isort: skip
from edgeprune.recipe.stages import strip  # noqa: F401  isort: skip
from edgeprune.recipe.stages import qat  # noqa: F401  isort: skip
from edgeprune.recipe.stages import convert  # noqa: F401  isort: skip
from edgeprune.recipe.stages import benchmark  # noqa: F401  isort: skip
from edgeprune.recipe.stages import report  # noqa: F401  isort: skip
from edgeprune.recipe.stages.registry import Stage, enabled_stages, register_stage, stage_names
