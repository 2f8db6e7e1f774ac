"""The `local` target: runs runner.py in a child process with this Python.

The child keeps a crashing interpreter away from the caller and gives each run a fresh process, so
its memory figures are the model's own.

>>> from device_bench.settings import RunSettings
>>> LocalTarget().run(["m.tflite"], RunSettings())   # doctest: +SKIP
"""

import json
import os
import subprocess
import sys

from device_bench import results, runner
from device_bench.errors import BenchError
from device_bench.modelfile import read_tflite
from device_bench.targets import runner_process

# Loading models and warming up come on top of --max_secs, which bounds the timed runs.
LOAD_ALLOWANCE_SECS = 60


class LocalTarget:
    name = "local"

    def __init__(self, python=sys.executable):
        self.python = python

    def run(self, graphs, settings):
        for graph in graphs:
            read_tflite(graph)
        config = settings.runner_config([os.path.abspath(g) for g in graphs])
        timeout = settings.max_secs + LOAD_ALLOWANCE_SECS * len(graphs)
        try:
            done = subprocess.run([self.python, runner.__file__], input=json.dumps(config),
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"local: the benchmark of {', '.join(graphs)} did not finish within "
                             f"{timeout:.0f} s; lower --max_secs or --num_runs, or check the "
                             "model: a damaged one can keep LiteRT busy") from None
        except OSError as error:
            raise BenchError(runner_process.cannot_start(self.python, error, "ai-edge-litert")) \
                from None
        raw = runner_process.decode(done.returncode, done.stdout, done.stderr, "local", graphs)
        return results.from_runner(raw, self.name, settings, list(graphs))
