"""The `adb://SERIAL` target: an Android phone running the official benchmark_model binary.

It pushes the user's benchmark_model and the models into a fresh folder under /data/local/tmp,
runs each model with benchmark_model's own flags (optionally pinned with `taskset MASK`), parses
the output (benchmark_model_output.py) into the result schema and removes the folder.

>>> shell_command("/data/local/tmp/d/benchmark_model", "/data/local/tmp/d/m.tflite",
...               RunSettings(num_threads=4, num_runs=10), "f0")[:60]
'taskset f0 /data/local/tmp/d/benchmark_model --graph=/data/l'
"""

import os
import posixpath
import shlex
import shutil
import subprocess
import uuid

from device_bench import benchmark_model_output, results
from device_bench.errors import BenchError
from device_bench.modelfile import read_tflite
from device_bench.schema import BenchmarkResult, Comparison, ModelResult, Ratio
from device_bench.settings import RunSettings

REMOTE_ROOT = "/data/local/tmp"
COMMAND_TIMEOUT_SECS = 120
_FLAGS = ("num_threads", "warmup_runs", "warmup_min_secs", "num_runs", "min_secs", "max_secs")


def shell_command(remote_binary, remote_graph, settings, taskset_mask=None):
    """The `adb shell` command line that runs benchmark_model; every value is shell-quoted."""
    flags = [f"--graph={remote_graph}"] + [f"--{name}={getattr(settings, name)}" for name in _FLAGS]
    flags.append(f"--use_xnnpack={str(settings.use_xnnpack).lower()}")
    if settings.input_shapes:
        flags.append("--input_layer=" + ",".join(settings.input_shapes))
        flags.append("--input_layer_shape=" + ":".join(
            ",".join(str(d) for d in shape) for shape in settings.input_shapes.values()))
    pin = f"taskset {shlex.quote(taskset_mask)} " if taskset_mask else ""
    return pin + " ".join(shlex.quote(part) for part in [remote_binary] + flags)


def model_result(graph, size_bytes, run):
    memory = run.peak_memory_bytes or run.memory_overall_bytes
    result = ModelResult(graph=graph, size_bytes=size_bytes, init_us=run.init_us,
                         first_inference_us=run.first_inference_us,
                         warmup_mean_us=run.warmup_mean_us, warmup_count=run.warmup_count,
                         latency=run.latency, memory_delta_bytes=memory,
                         memory_delta_kind=None if memory is None else (
                             "benchmark_model_peak" if run.peak_memory_bytes
                             else "benchmark_model_overall"))
    results.add_noise_warning(result)
    return result


def sequential_comparisons(models):
    """Ratios of typical latency (median if printed, else mean) against the first model."""
    def typical(m):
        return m.latency.p50_us or m.latency.mean_us
    return [Comparison(baseline=models[0].graph, graph=m.graph,
                       ratio=Ratio(pairs=0, median=typical(m) / typical(models[0]), p5=None,
                                   p95=None))
            for m in models[1:]]


class AdbTarget:
    def __init__(self, serial, benchmark_binary=None, taskset_mask=None, adb="adb"):
        self.serial, self.taskset_mask, self.adb = serial, taskset_mask, adb
        self.benchmark_binary = benchmark_binary
        self.name = f"adb://{serial}"

    def run(self, graphs, settings):
        for graph in graphs:  # checked before anything reaches the phone
            read_tflite(graph)
        with self.session() as session:
            return session.run(graphs, settings)

    def session(self):
        """An `AdbSession`: benchmark_model pushed once into one folder for many runs."""
        return AdbSession(self)

    def _adb(self, *args, timeout=COMMAND_TIMEOUT_SECS):
        command = [self.adb, "-s", self.serial, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"adb://{self.serial}: `adb {args[0]}` did not finish within "
                             f"{timeout:g} s; is the phone connected and unlocked?") from None
        if done.returncode != 0:
            raise BenchError(f"adb://{self.serial}: `adb {' '.join(args)[:120]}` failed: "
                             f"{(done.stderr or done.stdout).strip()[-600:]} (see `adb devices`)")
        return done.stdout + done.stderr


class AdbSession:
    """One folder on the phone with benchmark_model pushed once, reused by every `run` until
    `close()` removes it (or use `with`)."""

    def __init__(self, target):
        if not target.benchmark_binary or not os.path.isfile(target.benchmark_binary):
            raise BenchError(f"adb: --benchmark_binary={target.benchmark_binary!r} is not a file; "
                             "download LiteRT's android_aarch64 benchmark_model and pass its path")
        if shutil.which(target.adb) is None:
            raise BenchError(f"adb: {target.adb!r} not found; install Android platform-tools or "
                             "pass --adb=/path/to/adb")
        self.target = target
        self.folder = posixpath.join(REMOTE_ROOT, f"device_bench_{uuid.uuid4().hex[:12]}")
        self._runs = 0
        target._adb("shell", f"mkdir -p {shlex.quote(self.folder)}")
        try:
            self.binary = posixpath.join(self.folder, "benchmark_model")
            target._adb("push", target.benchmark_binary, self.binary)
            target._adb("shell", f"chmod 755 {shlex.quote(self.binary)}")
        except BaseException:
            self.close()
            raise

    def run(self, graphs, settings):
        target = self.target
        sizes = [len(read_tflite(graph)) for graph in graphs]
        self._runs += 1
        models = []
        for index, (graph, size) in enumerate(zip(graphs, sizes)):
            remote = posixpath.join(self.folder,
                                    f"{self._runs}_{index}_{os.path.basename(graph)}")
            target._adb("push", graph, remote)
            output = target._adb("shell", shell_command(self.binary, remote, settings,
                                                        target.taskset_mask),
                                 timeout=settings.max_secs * 2 + COMMAND_TIMEOUT_SECS)
            models.append(model_result(graph, size, benchmark_model_output.parse(output)))
        warnings = [w for m in models for w in m.warnings]
        if len(models) > 1:
            warnings.append("adb: benchmark_model runs one model per process, so the models ran "
                            "one after another, not interleaved; repeat the run to check ratios")
        return BenchmarkResult(target=target.name, settings=settings.to_dict(),
                               runtime={"runtime": "benchmark_model", "serial": target.serial},
                               models=models, comparisons=sequential_comparisons(models),
                               warnings=warnings)

    def close(self):
        self.target._adb("shell", f"rm -rf {shlex.quote(self.folder)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
