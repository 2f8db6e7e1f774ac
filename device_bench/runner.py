"""Times LiteRT inference of one or more .tflite models: the measurement code of every CPU target.

This one file is both a module of device_bench and the agent copied to a Raspberry Pi: it imports
only the standard library at the top, and numpy + ai_edge_litert inside functions, so it runs with
the board's own Python and reports a missing package as a clean error. It returns raw samples; the
host turns them into statistics (stats.py) and the result schema (schema.py).

Run as a script it reads a JSON config on stdin and prints one JSON document on stdout:

    echo '{"graphs": ["m.tflite"], "num_runs": 20}' | python runner.py

With several graphs the timed runs are interleaved (A B, B A, A B, ...) so that every model sees the
same machine noise and per-pair ratios stay meaningful on a busy machine.
"""

import json
import os
import platform
import sys
import threading
import time

PROTOCOL = 1
DEFAULTS = {
    "num_threads": -1,        # -1: the runtime's default, as benchmark_model
    "warmup_runs": 1,
    "warmup_min_secs": 0.5,
    "num_runs": 50,
    "min_secs": 1.0,
    "max_secs": 150.0,
    "use_xnnpack": True,
    "input_shapes": {},       # {input name: [dims]} for inputs with dynamic (-1) dimensions
    "seed": 0,
}


class RunnerError(Exception):
    """A failure the host reports to the user; `kind` lets it add target-specific advice."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def import_dependencies():
    """Returns (numpy, ai_edge_litert.interpreter) or raises RunnerError naming what is missing."""
    try:
        import numpy
        from ai_edge_litert import interpreter
    except ImportError as error:
        raise RunnerError("missing_dependency",
                          f"{sys.executable} cannot import {error.name or error}: install it with "
                          f"'{sys.executable} -m pip install ai-edge-litert numpy'") from None
    return numpy, interpreter


def exit_with_parent(poll_secs=0.5):
    """Ends this process soon after the process that started it dies.

    A killed device-bench, or a dropped SSH session, would otherwise leave the runner measuring for
    up to max_secs with nobody to read the result. An orphan's parent id changes (to init or a
    subreaper); a daemon thread watches for that, as portable as it gets without native code.
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_secs)
        os._exit(1)

    threading.Thread(target=watch, name="exit_with_parent", daemon=True).start()


def memory_bytes():
    """(current RSS, peak RSS) of this process in bytes; Linux /proc, else getrusage's peak."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024
        return peak, peak


def reset_peak_memory():
    """Resets the kernel's peak-RSS mark so each model's peak is its own (Linux); True if it did."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def random_inputs(details, np, rng):
    """One random array per input, in the input's dtype and (resized) shape."""
    arrays = []
    for detail in details:
        dtype, shape = np.dtype(detail["dtype"]), tuple(detail["shape"])
        if dtype.kind == "f":
            arrays.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        elif dtype.itemsize <= 2:  # quantized activations use the full integer range
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype))
        else:  # int32/int64 inputs are usually indices or lengths: keep them small
            arrays.append(rng.integers(0, 8, shape, dtype=dtype))
    return arrays


def elapsed_s(start_ns):
    return (time.perf_counter_ns() - start_ns) / 1e9


class TimedModel:
    """A loaded LiteRT interpreter with its inputs set, ready to be invoked and timed."""

    def __init__(self, path, config, np, litert, rng):
        self.path = path
        start = time.perf_counter_ns()
        try:
            self.interpreter = litert.Interpreter(
                model_path=path,
                num_threads=None if config["num_threads"] < 1 else config["num_threads"],
                experimental_op_resolver_type=(
                    litert.OpResolverType.AUTO if config["use_xnnpack"]
                    else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
            self._resize_dynamic_inputs(config["input_shapes"])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise RunnerError("model_load", f"{path}: LiteRT cannot load it: {error}") from None
        self.init_us = (time.perf_counter_ns() - start) / 1e3
        self.inputs = []
        for detail, array in zip(self.interpreter.get_input_details(),
                                 random_inputs(self.interpreter.get_input_details(), np, rng)):
            self.interpreter.set_tensor(detail["index"], array)
            self.inputs.append({"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
                                "shape": [int(d) for d in detail["shape"]]})
        self.invoke = self.interpreter.invoke

    def _resize_dynamic_inputs(self, input_shapes):
        details = self.interpreter.get_input_details()
        unknown = sorted(set(input_shapes) - {d["name"] for d in details})
        if unknown:
            raise RunnerError("bad_input_shape", f"{self.path}: no input named "
                              f"{', '.join(unknown)}; its inputs are "
                              f"{', '.join(d['name'] for d in details)}")
        for detail in details:
            signature = [int(d) for d in detail["shape_signature"]]
            wanted = input_shapes.get(detail["name"])
            if wanted is None and -1 not in signature:
                continue
            shape = list(wanted) if wanted is not None else [1 if d < 0 else d for d in signature]
            try:
                self.interpreter.resize_tensor_input(detail["index"], shape, strict=False)
                self.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                raise RunnerError("bad_input_shape", f"{self.path}: input {detail['name']} "
                                  f"(signature {signature}) cannot take shape {shape}: "
                                  f"{error}") from None

    def time_once_us(self):
        start = time.perf_counter_ns()
        self.invoke()
        return (time.perf_counter_ns() - start) / 1e3


def warm_up(model, config, deadline_ns):
    """First inference and warmup runs (at least warmup_runs and warmup_min_secs, max_secs cap)."""
    try:
        first_us = model.time_once_us()
    except (ValueError, RuntimeError) as error:
        raise RunnerError("invoke", f"{model.path}: inference failed: {error}") from None
    samples, start = [], time.perf_counter_ns()
    while time.perf_counter_ns() < deadline_ns and (
            len(samples) < config["warmup_runs"] or elapsed_s(start) < config["warmup_min_secs"]):
        samples.append(model.time_once_us())
    return first_us, samples


def timed_runs(models, config, deadline_ns):
    """Interleaved timed runs until every model has num_runs and min_secs passed, or max_secs
    (at least one round, so a slow warmup still leaves a figure)."""
    samples = [[] for _ in models]
    start, round_index = time.perf_counter_ns(), 0
    while not samples[0] or time.perf_counter_ns() < deadline_ns and (
            len(samples[0]) < config["num_runs"] or elapsed_s(start) < config["min_secs"]):
        order = range(len(models)) if round_index % 2 == 0 else reversed(range(len(models)))
        for i in order:
            samples[i].append(models[i].time_once_us())
        round_index += 1
    return samples


def run(config):
    """Benchmarks config["graphs"]; returns the raw-measurement dict described in the module doc."""
    config = {**DEFAULTS, **config}
    np, litert = import_dependencies()
    rng = np.random.default_rng(config["seed"])
    deadline = time.perf_counter_ns() + int(config["max_secs"] * 1e9)
    # A first, discarded load and run of the first model takes the runtime's one-time start-up
    # (library pages, delegate and thread-pool set-up) out of that model's init time and memory,
    # so every model's figures are its own.
    warm_up(TimedModel(config["graphs"][0], config, np, litert, np.random.default_rng(0)),
            {**config, "warmup_runs": 0, "warmup_min_secs": 0}, deadline)
    models, reports = [], []
    for path in config["graphs"]:
        peak_was_reset = reset_peak_memory()
        rss_before, _ = memory_bytes()
        model = TimedModel(path, config, np, litert, rng)
        first_us, warmup_us = warm_up(model, config, deadline)
        rss_after, peak = memory_bytes()
        models.append(model)
        reports.append({"graph": path, "size_bytes": os.path.getsize(path), "inputs": model.inputs,
                        "init_us": model.init_us, "first_inference_us": first_us,
                        "warmup_us": warmup_us,
                        "memory_delta_bytes": (peak if peak_was_reset else rss_after) - rss_before,
                        "memory_delta_kind": "peak_rss" if peak_was_reset else "rss"})
    for report, samples in zip(reports, timed_runs(models, config, deadline)):
        report["samples_us"] = [round(s, 2) for s in samples]
    return {"protocol": PROTOCOL, "models": reports, "runtime": runtime_info(litert)}


def runtime_info(litert):
    try:
        from importlib.metadata import version
        litert_version = version("ai-edge-litert")
    except Exception:  # metadata missing in a vendored install: the figures are still valid
        litert_version = "unknown"
    return {"litert_version": litert_version, "python": platform.python_version(),
            "machine": platform.machine(), "system": platform.system(),
            "hostname": platform.node(), "cpu_count": os.cpu_count()}


def main():
    exit_with_parent()
    try:
        result = run(json.load(sys.stdin))
        code = 0
    except RunnerError as error:
        result, code = {"protocol": PROTOCOL, "error": {"kind": error.kind, "message": str(error)}}, 3
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
