"""device_bench: benchmark .tflite models on the host, a Raspberry Pi (SSH), Android (adb) or a
microcontroller (TFLite Micro). Imports no TensorFlow: only numpy and ai-edge-litert are needed.

>>> import device_bench
>>> result = device_bench.benchmark("model.tflite", target="local", num_runs=50)  # doctest: +SKIP
>>> print(result.to_dict()["models"][0]["latency"]["p50_us"])                    # doctest: +SKIP
"""

from device_bench.api import benchmark, make_target, session
from device_bench.errors import BenchError
from device_bench.fleet import benchmark_fleet
from device_bench.fleet_file import Device, load_fleet
from device_bench.schema import SCHEMA_VERSION, BenchmarkResult, FleetResult
from device_bench.settings import RunSettings
from device_bench.targets import TargetOption, register_target

__all__ = ["benchmark", "make_target", "session", "register_target", "TargetOption", "BenchError",
           "BenchmarkResult", "RunSettings", "SCHEMA_VERSION", "benchmark_fleet", "load_fleet",
           "Device", "FleetResult"]
