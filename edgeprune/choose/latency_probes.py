"""One-layer `.tflite` probes and their timing on a device, through an on-disk cache.

A `Probe` is one convolution, depthwise convolution or dense layer at given widths; `ProbeBench`
converts probes, times them in batches over one device_bench session and keeps each timing in a
JSON file per device and runtime, so that a second run measures nothing. `latency.py` builds the
latency model from these timings.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import tempfile
import warnings

import numpy as np

from device_bench.fileio import atomic_write
from edgeprune.tf_logs import quiet

STATISTICS = {"median": "p50_us", "min": "min_us"}
BATCH = 8  # probes timed together (interleaved) per device_bench run


@dataclasses.dataclass
class Probe:
    """One single-layer `.tflite` to time: a convolution, depthwise convolution or dense layer."""

    kind: str           # "conv", "depthwise", "dense"
    spatial: tuple      # input (height, width); for dense, (rows,) or () for one vector
    kernel: tuple       # (kh, kw); () for dense
    strides: tuple
    padding: str
    dilation: tuple
    cin: int
    cout: int

    def key(self, precision, num_threads):
        return (f"{precision}/t{num_threads}/{self.kind}/{'x'.join(map(str, self.spatial))}/"
                f"k{'x'.join(map(str, self.kernel))}/s{'x'.join(map(str, self.strides))}/"
                f"{self.padding}/d{'x'.join(map(str, self.dilation))}/{self.cin}-{self.cout}")

    def resized(self, cin=None, cout=None):
        cin = self.cin if cin is None else cin
        cout = self.cout if cout is None else cout
        if self.kind == "depthwise":  # one channel axis: input and output alike
            cin = cout = cout if cout != self.cout else cin
        return dataclasses.replace(self, cin=int(cin), cout=int(cout))

    def flatbuffer(self, precision):
        """The probe converted to `.tflite` (random weights; int8 with int8 input and output)."""
        import tensorflow as tf

        rng = np.random.default_rng(0)
        shape = (1, *self.spatial, self.cin)
        if self.kind == "conv":
            kernel = tf.constant(rng.normal(0, 0.1, (*self.kernel, self.cin, self.cout)),
                                 tf.float32)
        elif self.kind == "depthwise":
            kernel = tf.constant(rng.normal(0, 0.1, (*self.kernel, self.cin, 1)), tf.float32)
        else:
            kernel = tf.constant(rng.normal(0, 0.1, (self.cin, self.cout)), tf.float32)
        bias = tf.constant(rng.normal(0, 0.1, self.cout), tf.float32)
        strides, padding = [1, *self.strides, 1], self.padding.upper()

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
        def layer(x):
            if self.kind == "conv":
                y = tf.nn.conv2d(x, kernel, strides, padding, dilations=list(self.dilation))
            elif self.kind == "depthwise":
                y = tf.nn.depthwise_conv2d(x, kernel, strides, padding,
                                           dilations=list(self.dilation))
            else:  # rows of a sequence or feature map: one matrix product
                y = tf.matmul(tf.reshape(x, (-1, self.cin)), kernel)
            return tf.nn.relu(tf.nn.bias_add(y, bias))

        with quiet():
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [layer.get_concrete_function()], tf.Module())
            if precision == "int8":
                samples = rng.uniform(-1, 1, (4, *shape)).astype("float32")
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([s] for s in samples)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = converter.inference_output_type = tf.int8
            return bytes(converter.convert())


class ProbeBench:
    """Times probes on one device_bench session, through the on-disk cache."""

    def __init__(self, target, precision, num_threads, num_runs, statistic, cache_dir, progress,
                 options):
        import device_bench

        self.precision, self.num_threads, self.num_runs = precision, num_threads, num_runs
        self.statistic = STATISTICS[statistic]
        self.progress = progress
        self.name = target
        self._target, self._options = target, options
        self._session = None
        self._device_bench = device_bench
        folder = cache_dir or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
            "edgeprune", "latency")
        self.cache_path = os.path.join(folder, _cache_name(target, options) + ".json")
        self.cache = _read_cache(self.cache_path)
        self.measured = self.cached = 0
        self._counted = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._session is not None:
            self._session.close()

    def key(self, probe):
        return probe.key(self.precision, self.num_threads)

    def latency_us(self, probe, statistic=None):
        """The probe's time in µs, by the bench's statistic or `statistic` ("p50_us", "min_us")."""
        if self.key(probe) not in self.cache["probes"]:  # dropped by a change of runtime
            self.ensure([probe], "again")
        return self.cache["probes"][self.key(probe)][statistic or self.statistic]

    def ensure(self, probes, what):
        """Measures every probe not in the cache yet."""
        unique = {}
        for probe in probes:
            unique.setdefault(self.key(probe), probe)
        for key in unique:
            if key in self.cache["probes"] and key not in self._counted:
                self.cached += 1
            self._counted.add(key)
        missing = [(k, p) for k, p in unique.items() if k not in self.cache["probes"]]
        if not missing:
            return
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), desc=f"latency model: {what} ({self.precision})",
                   unit="probe", disable=not self.progress, leave=False)
        try:
            for start in range(0, len(missing), BATCH):
                batch = missing[start:start + BATCH]
                for key, value in zip([k for k, _ in batch], self._time([p for _, p in batch])):
                    self.cache["probes"][key] = value
                self.measured += len(batch)
                atomic_write(self.cache_path, json.dumps(self.cache, indent=0, sort_keys=True))
                bar.update(len(batch))
        finally:
            bar.close()

    def whole_model_ms(self, tflite):
        with tempfile.TemporaryDirectory(prefix="edgeprune-latency-") as folder:
            path = as_path(tflite, folder, "dense.tflite")
            result = self._run([path], max(self.num_runs, 50))
        return getattr(result.models[0].latency, self.statistic) / 1e3

    def _time(self, probes):
        with tempfile.TemporaryDirectory(prefix="edgeprune-latency-") as folder:
            paths = []
            for index, probe in enumerate(probes):
                paths.append(as_path(probe.flatbuffer(self.precision), folder, f"{index}.tflite"))
            result = self._run(paths, self.num_runs)
        runtime = {k: v for k, v in result.runtime.items() if k != "python"}
        if self.cache.get("runtime", runtime) != runtime:  # upgraded LiteRT, another board
            warnings.warn(f"latency model: {self.name} now runs {runtime}, not "
                          f"{self.cache['runtime']}: its cached measurements are dropped")
            self.cache["probes"] = {}
        self.cache["runtime"] = runtime
        return [{key: getattr(model.latency, key) for key in STATISTICS.values()}
                for model in result.models]

    def _run(self, paths, num_runs):
        if self._session is None:
            self._session = self._device_bench.session(self._target, **self._options)
        return self._session.benchmark(paths, num_threads=self.num_threads, num_runs=num_runs,
                                       min_secs=0, warmup_runs=2, warmup_min_secs=0.02)


def as_path(tflite, folder, name):
    if isinstance(tflite, (bytes, bytearray)):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(tflite)
        return path
    return os.fspath(tflite)


def _cache_name(target, options):
    """One cache file per device and runtime: the target and its options; for `local`, this
    machine, its CPU and its LiteRT version."""
    identity = [target, json.dumps(options, sort_keys=True, default=str)]
    if target == "local":
        try:
            litert = importlib.metadata.version("ai-edge-litert")
        except importlib.metadata.PackageNotFoundError:
            litert = "unknown"
        identity += [platform.node(), platform.machine(), platform.processor(), _cpu_model(),
                     litert]
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", target)[:60] + "-" + digest


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), "")
    except OSError:
        return ""


def _read_cache(path):
    try:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data.get("probes"), dict) and all(
                isinstance(value, dict) and set(STATISTICS.values()) <= set(value)
                for value in data["probes"].values()):
            return data
    except (OSError, ValueError, AttributeError):
        pass  # no cache yet, or a damaged one: measure again
    return {"probes": {}}


def resized(probe, axis_name, width):
    """`probe` with its "input" or "output" channel axis at `width`."""
    return probe.resized(cin=width) if axis_name == "input" else probe.resized(cout=width)
