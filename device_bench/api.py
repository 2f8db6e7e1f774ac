"""`benchmark()`: the Python entry point; the CLI is a thin layer over it.

>>> import device_bench
>>> result = device_bench.benchmark("m.tflite", num_runs=20)            # doctest: +SKIP
>>> result.models[0].latency.p50_us                                    # doctest: +SKIP
>>> device_bench.benchmark(["a.tflite", "b.tflite"], target="ssh://pi@raspberrypi.local",
...                        num_threads=4).comparisons[0].ratio.median   # doctest: +SKIP
"""

import dataclasses
import importlib
import inspect
import os

from device_bench.errors import BenchError
from device_bench.settings import RunSettings
from device_bench.targets import parse_target

_TARGET_CLASSES = {"local": ("device_bench.targets.local", "LocalTarget"),
                   "ssh": ("device_bench.targets.ssh", "SshTarget"),
                   "adb": ("device_bench.targets.adb", "AdbTarget"),
                   "micro": ("device_bench.targets.micro", "MicroTarget"),
                   "serial": ("device_bench.targets.serial", "SerialTarget")}
SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(RunSettings))


def make_target(spec, **options):
    """The target object for a --target value, given its target-specific options."""
    kind, address = parse_target(spec)
    module, name = _TARGET_CLASSES[kind]
    target_class = getattr(importlib.import_module(module), name)
    accepted = [p for p in inspect.signature(target_class).parameters if p != "address"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BenchError(f"option(s) {', '.join(unknown)} do not apply to the {kind} target; it "
                         f"accepts: {', '.join(accepted) or 'no options'}")
    return target_class(address, **options) if address else target_class(**options)


def benchmark(graphs, target="local", **options):
    """Benchmarks one .tflite path or a list of them (interleaved, compared with the first one).

    `options` are RunSettings fields (num_threads, warmup_runs, warmup_min_secs, num_runs,
    min_secs, max_secs, use_xnnpack, input_shapes, seed) and the target's own options (ssh:
    known_hosts, check_host_key, key_filename, remote_python, timeout, remote_temp_root;
    adb: benchmark_binary, taskset_mask, adb; micro: board, boards_file; serial: baudrate,
    timeout, board, boards_file). Returns a schema.BenchmarkResult.
    """
    graphs = [graphs] if isinstance(graphs, (str, os.PathLike)) else list(graphs)
    if not graphs:
        raise BenchError("no model given: pass at least one .tflite path")
    settings = RunSettings(**{k: v for k, v in options.items() if k in SETTING_NAMES})
    target_options = {k: v for k, v in options.items() if k not in SETTING_NAMES}
    return make_target(target, **target_options).run([os.fspath(g) for g in graphs], settings)
