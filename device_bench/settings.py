"""Run settings shared by every target, named and defaulted like benchmark_model's flags.

>>> RunSettings(num_runs=10).num_runs
10
>>> RunSettings(num_runs=0)
Traceback (most recent call last):
...
device_bench.errors.BenchError: --num_runs must be at least 1 (got 0)
"""

import dataclasses
from dataclasses import dataclass, field

from device_bench.errors import BenchError
from device_bench.runner import DEFAULTS

# Each setting's JSON schema: RunSettings enforces the bounds and recipes are checked against it.
SETTING_SCHEMAS = {
    "num_threads": {"type": "integer", "minimum": -1},
    "warmup_runs": {"type": "integer", "minimum": 0},
    "warmup_min_secs": {"type": "number", "minimum": 0},
    "num_runs": {"type": "integer", "minimum": 1},
    "min_secs": {"type": "number", "minimum": 0},
    "max_secs": {"type": "number", "exclusiveMinimum": 0},
    "use_xnnpack": {"type": "boolean"},
    "input_shapes": {"type": "object", "additionalProperties": {
        "type": "array", "items": {"type": "integer"}}},
    "seed": {"type": "integer"},
}


@dataclass
class RunSettings:
    num_threads: int = DEFAULTS["num_threads"]
    warmup_runs: int = DEFAULTS["warmup_runs"]
    warmup_min_secs: float = DEFAULTS["warmup_min_secs"]
    num_runs: int = DEFAULTS["num_runs"]
    min_secs: float = DEFAULTS["min_secs"]
    max_secs: float = DEFAULTS["max_secs"]
    use_xnnpack: bool = DEFAULTS["use_xnnpack"]
    input_shapes: dict = field(default_factory=dict)
    seed: int = DEFAULTS["seed"]

    def __post_init__(self):
        for name, schema in SETTING_SCHEMAS.items():
            value = getattr(self, name)
            if "minimum" in schema and value < schema["minimum"]:
                raise BenchError(f"--{name} must be at least {schema['minimum']} (got {value})")
            if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
                raise BenchError(f"--{name} must be above {schema['exclusiveMinimum']} "
                                 f"(got {value})")

    def to_dict(self):
        return dataclasses.asdict(self)

    def runner_config(self, graphs):
        """The JSON config runner.py reads on stdin."""
        return {**self.to_dict(), "graphs": list(graphs)}
