"""`benchmark()`: the Python entry point; the CLI is a thin layer over it.

>>> import device_bench
>>> result = device_bench.benchmark("m.tflite", num_runs=20)            # doctest: +SKIP
>>> result.models[0].latency.p50_us                                    # doctest: +SKIP
>>> device_bench.benchmark(["a.tflite", "b.tflite"], target="ssh://pi@raspberrypi.local",
...                        num_threads=4).comparisons[0].ratio.median   # doctest: +SKIP
>>> options_schema()["properties"]["target"]["pattern"]
'^(local|ssh://.+|adb://.+|micro|serial://.+)$'
"""

import dataclasses
import os

from device_bench.errors import BenchError
from device_bench.settings import SETTING_SCHEMAS, RunSettings
from device_bench.targets import registry

SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(RunSettings))


def make_target(spec, **options):
    """The target object for a --target value, given its target-specific options."""
    scheme, address = registry.parse_target(spec)
    return registry.find(scheme).create(address, options)


def benchmark(graphs, target="local", **options):
    """Benchmarks one .tflite path or a list of them (interleaved, compared with the first one).

    `options` are RunSettings fields (num_threads, warmup_runs, warmup_min_secs, num_runs,
    min_secs, max_secs, use_xnnpack, input_shapes, seed) and the target's own options, named as
    in targets/__init__.py (e.g. ssh: key_filename, known_hosts; micro: board), also listed by
    `device-bench --help`.
    Returns a schema.BenchmarkResult.
    """
    graphs = [graphs] if isinstance(graphs, (str, os.PathLike)) else list(graphs)
    if not graphs:
        raise BenchError("no model given: pass at least one .tflite path")
    settings = RunSettings(**{k: v for k, v in options.items() if k in SETTING_NAMES})
    target_options = {k: v for k, v in options.items() if k not in SETTING_NAMES}
    return make_target(target, **target_options).run([os.fspath(g) for g in graphs], settings)


class Session:
    """Runs benchmarks on one target over one connection (SSH, adb) until closed.

    Made by `session()`; `benchmark(graphs, **settings)` takes what `benchmark()` takes but the
    target. Targets without a `session()` method (local, micro, serial: nothing to keep open)
    simply run each call on their own.
    """

    def __init__(self, target):
        self.target = target
        opener = getattr(target, "session", None)
        self._open = opener() if opener is not None else None

    def benchmark(self, graphs, **settings):
        graphs = [graphs] if isinstance(graphs, (str, os.PathLike)) else list(graphs)
        if not graphs:
            raise BenchError("no model given: pass at least one .tflite path")
        unknown = sorted(set(settings) - SETTING_NAMES)
        if unknown:
            raise BenchError(f"unknown run settings {unknown}; a session takes "
                             f"{sorted(SETTING_NAMES)} (target options go to session())")
        runner = self._open if self._open is not None else self.target
        return runner.run([os.fspath(g) for g in graphs], RunSettings(**settings))

    def close(self):
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def session(target="local", **options):
    """A `Session` on `target` (its own options, e.g. ssh's key_filename, given here): measuring
    many models over SSH or adb then connects, and copies the runner or benchmark_model, once.

    >>> with device_bench.session("ssh://pi@raspberrypi.local") as bench:   # doctest: +SKIP
    ...     results = [bench.benchmark(path, num_threads=1) for path in paths]
    """
    return Session(make_target(target, **options))


def options_schema():
    """The JSON schema of one `{target: ..., **options}` entry, as recipes list them.

    Run settings apply to every target; each target's own options are allowed only with it, so a
    recipe that gives --board to `local` fails when it is loaded rather than after training.
    """
    return {
        "type": "object",
        "properties": {
            "target": {"type": "string", "pattern": registry.target_pattern(),
                       "description": f"a target: {registry.usage_list()}"},
            **SETTING_SCHEMAS,
        },
        "required": ["target"],
        "allOf": [{
            "if": {"required": ["target"], "properties": {
                "target": {"type": "string", "pattern": f"^{target.pattern}$"}}},
            # Settings are checked above; listing them here only allows them.
            "then": {"properties": {"target": {}, **dict.fromkeys(SETTING_SCHEMAS, {}),
                                    **{o.name: o.json_schema() for o in target.options}},
                     "additionalProperties": False},
        } for target in registry.targets()],
    }
