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
        self._at_least("num_runs", 1)
        self._at_least("warmup_runs", 0)
        self._at_least("num_threads", -1)
        for name in ("warmup_min_secs", "min_secs"):
            self._at_least(name, 0)
        if not self.max_secs > 0:
            raise BenchError(f"--max_secs must be above 0 (got {self.max_secs})")

    def _at_least(self, name, lowest):
        value = getattr(self, name)
        if value < lowest:
            raise BenchError(f"--{name} must be at least {lowest} (got {value})")

    def to_dict(self):
        return dataclasses.asdict(self)

    def runner_config(self, graphs):
        """The JSON config runner.py reads on stdin."""
        return {**self.to_dict(), "graphs": list(graphs)}
