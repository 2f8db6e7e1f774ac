"""Several devices benchmarked at once: a fleet, with one row per device.

Each device runs in a worker process of its own (a fresh Python in its own process group), so a
device that fails, hangs past `device_timeout` or drops its connection costs only its own row.
Ctrl-C stops every worker: SIGINT first, so that targets clean up after themselves (the SSH
target removes its temp dir on the board), SIGKILL after STOP_GRACE_SECS. Devices that compute on
this computer's CPUs (targets registered with on_host=True: local, micro) run one after another
in one lane, so that they do not skew each other's figures; every other device has a lane of its
own and all lanes run in parallel.

The devices come from a fleet file (`device_bench.fleet_file`) or from a list.

>>> benchmark_fleet("m.tflite", [])
Traceback (most recent call last):
    ...
device_bench.errors.BenchError: no device given: pass at least one target or a fleet file
>>> result = benchmark_fleet("m.tflite", ["local", "ssh://pi@raspberrypi.local"])  # doctest: +SKIP
>>> [(d.name, d.status) for d in result.devices]                                   # doctest: +SKIP
[('local', 'ok'), ('ssh://pi@raspberrypi.local', 'failed')]
"""

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass

from device_bench.errors import BenchError
from device_bench.fleet_file import FILE_KEYS, MAX_DEVICES, Device, graph_list
from device_bench.modelfile import read_tflite
from device_bench.schema import DeviceRun, FleetResult
from device_bench.settings import SETTING_SCHEMAS, RunSettings
from device_bench.targets import registry
from device_bench.targets.runner_process import crash_signal

# How long a stopped worker gets to clean up (close connections, remove temp dirs) before SIGKILL.
STOP_GRACE_SECS = 5.0


def benchmark_fleet(graphs, devices, device_timeout=None, **options):
    """Benchmarks `graphs` on every device at once; returns a schema.FleetResult.

    `devices`: --target values ("local", "ssh://pi@raspberrypi.local"), Device objects, dicts
    `{"name": ..., "target": ..., **options}` or `fleet_file.load_fleet(path)`'s list. `options` (run settings
    and target options, as `benchmark()` takes them) apply to every device whose target accepts
    them; a device's own options win. `device_timeout`: seconds after which a device is stopped
    and its row says so (default: each target's own limits). A device that fails gets its error in
    its row; configuration errors (unknown option, board or target) raise BenchError before any
    device runs. Ctrl-C stops every worker, then KeyboardInterrupt propagates.
    """
    graphs = [graphs] if isinstance(graphs, (str, os.PathLike)) else list(graphs or [])
    devices = [_as_device(device) for device in devices]
    if not devices:
        raise BenchError("no device given: pass at least one target or a fleet file")
    if len(devices) > MAX_DEVICES:
        raise BenchError(f"{len(devices)} devices, more than the {MAX_DEVICES} a fleet runs at "
                         "once; run them in several fleets")
    if device_timeout is not None and not (isinstance(device_timeout, (int, float))
                                           and device_timeout > 0):
        raise BenchError(f"--device_timeout must be a number of seconds above 0 "
                         f"(got {device_timeout!r})")
    jobs = _plan([os.fspath(g) for g in graphs], devices, options)
    host = [job for job in jobs if job.on_host]
    lanes = ([host] if host else []) + [[job] for job in jobs if not job.on_host]
    started = time.monotonic()
    runs, caught = _run_lanes(lanes, device_timeout)
    return FleetResult(devices=[runs[job.name] for job in jobs],
                       lanes=[[job.name for job in lane] for lane in lanes],
                       wall_seconds=time.monotonic() - started, warnings=caught)


def _as_device(device):
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        return Device(device, device)
    if isinstance(device, dict) and isinstance(device.get("target"), str):
        name = device.get("name", device["target"])
        options = {k: v for k, v in device.items() if k not in FILE_KEYS | {"name"}}
        return Device(name, device["target"], options,
                      graph_list(f"device {name!r}", device.get("graph", [])))
    raise BenchError(f"device {device!r:.80}: give a --target value, a Device or a dict with a "
                     "'target' key")


@dataclass
class _Job:
    name: str
    spec: str
    on_host: bool
    target: object
    graphs: list
    settings: RunSettings


def _plan(graphs, devices, options):
    """A _Job per device, every option and model checked before anything runs."""
    names = [device.name for device in devices]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BenchError(f"device(s) {', '.join(repeated)} given twice; each device runs once "
                         "(give the fleet file's devices different names)")
    kinds = [registry.find(registry.parse_target(device.target)[0]) for device in devices]
    fleet_settings = {k: v for k, v in options.items() if k in SETTING_SCHEMAS}
    fleet_options = {k: v for k, v in options.items() if k not in SETTING_SCHEMAS}
    for name in fleet_options:
        if not any(kind.accepts(name) for kind in kinds):
            owners = [t.usage for t in registry.targets() if t.accepts(name)]
            raise BenchError(f"option {name} applies to none of the fleet's targets "
                             f"({', '.join(dict.fromkeys(k.scheme for k in kinds))})"
                             + (f"; it is for {', '.join(owners)}" if owners else ""))
    for graph in dict.fromkeys(graphs + [g for device in devices for g in device.graphs]):
        read_tflite(graph)
    jobs = []
    for device, kind in zip(devices, kinds):
        where = f"device {device.name!r}"
        _check_options(where, device.options, kind)
        merged = {**fleet_settings, **{k: v for k, v in fleet_options.items() if kind.accepts(k)},
                  **device.options}
        device_graphs = list(device.graphs) or graphs
        if not device_graphs:
            raise BenchError(f"{where}: no model to run; pass --graph, or give the device its "
                             "own graph: in the fleet file")
        try:
            settings = RunSettings(**{k: v for k, v in merged.items() if k in SETTING_SCHEMAS})
            target = kind.create(registry.parse_target(device.target)[1],
                                 {k: v for k, v in merged.items() if k not in SETTING_SCHEMAS})
        except BenchError as error:
            raise BenchError(f"{where}: {error}") from None
        try:
            if type(target).__module__ == "__main__":
                raise pickle.PicklingError(f"{type(target).__name__} is defined in __main__")
            pickle.dumps(target)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise BenchError(f"{where}: its {kind.scheme} target cannot be sent to a worker "
                             f"process ({error}); define the target class at the top level of "
                             "a module the worker can import, not in the script you run") \
                from None
        jobs.append(_Job(device.name, device.target, kind.on_host, target, device_graphs,
                         settings))
    return jobs


_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(s, list) and all(_TYPE_CHECKS["integer"](d) for d in s)
        for k, s in v.items()),
}


def _check_options(where, options, kind):
    """Option names and value types of one device, against the run settings and its target."""
    types = {name: schema["type"] for name, schema in SETTING_SCHEMAS.items()}
    types.update({option.name: option.json_schema()["type"] for option in kind.options})
    unknown = sorted(map(str, set(options) - set(types)))
    if unknown:
        own = ", ".join(option.name for option in kind.options) or "none"
        raise BenchError(f"{where}: unknown option(s) {', '.join(unknown)}; the {kind.scheme} "
                         f"target takes {own}, and every target takes the run settings "
                         f"{', '.join(SETTING_SCHEMAS)}")
    for name, value in options.items():
        if not _TYPE_CHECKS[types[name]](value):
            expected = {"object": "a mapping of input names to shapes",
                        "integer": "an integer"}.get(types[name], f"a {types[name]}")
            raise BenchError(f"{where}: {name} must be {expected}, got {value!r:.80}")


def _run_lanes(lanes, device_timeout):
    """({device name: DeviceRun}, warnings): each lane's jobs one after another, lanes at once."""
    queues = [deque(lane) for lane in lanes]
    finished = queue.Queue()  # workers whose output has been read, in the order they finish
    running, runs, caught = set(), {}, []

    def start_next(lane):
        if lane:
            running.add(_Worker(lane.popleft(), lane, device_timeout, finished))

    try:
        for lane in queues:
            start_next(lane)
        while running:
            deadlines = [w.deadline for w in running if w.deadline is not None]
            try:
                worker = finished.get(timeout=max(0.0, min(deadlines) - time.monotonic())
                                      if deadlines else None)
            except queue.Empty:
                worker = None
            if worker is not None:
                running.discard(worker)
                runs[worker.job.name] = worker.finish(caught)
                start_next(worker.lane)
            for worker in [w for w in running if w.deadline and time.monotonic() >= w.deadline]:
                running.discard(worker)
                runs[worker.job.name] = worker.stop(
                    "timeout", f"did not finish within {device_timeout:g} s "
                    "(--device_timeout); it was stopped. Raise --device_timeout, lower "
                    "--max_secs or check the device")
                start_next(worker.lane)
    except BaseException:  # Ctrl-C (KeyboardInterrupt) included: no worker outlives the call
        _stop_all(running)
        raise
    return runs, caught


def _stop_all(workers):
    """SIGINT to every worker, so targets clean up; SIGKILL after the grace period, or at once on
    a second Ctrl-C."""
    try:
        for worker in workers:
            worker.signal(signal.SIGINT)
        for worker in workers:
            worker.wait_or_kill()
    except KeyboardInterrupt:
        for worker in workers:
            worker.kill()
        raise


# A worker is a fresh Python: it takes the parent's sys.path, then (target, graphs, settings),
# pickled on stdin, and writes its outcome pickled on stdout. Unlike multiprocessing's spawn it
# does not re-run the caller's main script, which may have no `if __name__ == "__main__"` guard.
_BOOTSTRAP = ("import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
              "from device_bench.fleet import work; work()")


class _Worker:
    """One device's worker process, in a session (process group) of its own."""

    def __init__(self, job, lane, timeout, finished):
        self.job, self.lane, self.output = job, lane, b""
        self.started = time.monotonic()
        self.deadline = self.started + timeout if timeout else None
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Its own group: the fleet signals it with its children, and Ctrl-C at the terminal
            # reaches the fleet only, which then stops every worker the same way.
            start_new_session=True)
        try:
            with self.process.stdin:
                self.process.stdin.write(pickle.dumps(sys.path)
                                         + pickle.dumps((job.target, job.graphs, job.settings)))
        except BrokenPipeError:
            pass  # the worker died at once; finish() says how
        threading.Thread(target=self._read, args=(finished,), daemon=True,
                         name=f"device_bench fleet: {job.name}").start()

    def _read(self, finished):
        with self.process.stdout:
            self.output = self.process.stdout.read()
        finished.put(self)

    def finish(self, caught):
        """The DeviceRun the worker sent, or a failed one saying how the worker ended."""
        self.wait_or_kill()
        try:
            status, payload, worker_warnings = pickle.loads(self.output)
        except (EOFError, pickle.UnpicklingError, ValueError):  # no whole outcome: it died
            code = self.process.returncode
            how = crash_signal(code) or f"exit status {code}"
            return self._run("failed", error=f"the worker process ended without a result ({how})")
        for category, message in worker_warnings:
            caught.append(f"{self.job.name}: {message}")
            warnings.warn(f"{self.job.name}: {message}", category, stacklevel=2)
        if status == "ok":
            return self._run(status, result=payload)
        return self._run(status, error=payload)

    def stop(self, status, error):
        self.signal(signal.SIGINT)
        self.wait_or_kill()
        return self._run(status, error=error)

    def signal(self, number):
        """Sends `number` to the worker and everything it started (its process group)."""
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, number)
            else:
                self.process.terminate()
        except (ProcessLookupError, PermissionError):  # the group is gone already
            pass

    def wait_or_kill(self):
        try:
            self.process.wait(STOP_GRACE_SECS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.kill()  # what the worker started and left behind

    def kill(self):
        self.signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        self.process.kill()  # (no group on Windows; a no-op once the worker has exited)

    def _run(self, status, result=None, error=None):
        return DeviceRun(name=self.job.name, target=self.job.spec, status=status,
                         seconds=time.monotonic() - self.started, result=result, error=error)


def work():
    """A worker process (see _BOOTSTRAP): runs one device and writes (status, result or error,
    warnings) pickled on its stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, not into the outcome
    with warnings.catch_warnings(record=True) as caught:
        try:
            target, graphs, settings = pickle.load(sys.stdin.buffer)
            outcome = ("ok", target.run(graphs, settings))
        except BenchError as error:
            outcome = ("failed", str(error))
        except KeyboardInterrupt:
            outcome = ("interrupted", "stopped by Ctrl-C")
        except Exception as error:  # a target's bug, or a class the worker cannot import
            outcome = ("failed", f"unexpected {type(error).__name__}: {error}")
    with out:
        out.write(pickle.dumps((*outcome, [(_sendable(w.category), str(w.message))
                                           for w in caught])))


def _sendable(category):
    try:
        pickle.dumps(category)
        return category
    except (pickle.PicklingError, AttributeError, TypeError):
        return UserWarning
