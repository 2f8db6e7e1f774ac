"""The fleet file: the devices of a fleet, read and checked before anything runs.

A fleet file (YAML, or JSON when it ends in .json) names each device and gives its target and
options, with the names `benchmark()` and a recipe's `benchmark.targets` use:

    devices:
      pi4:
        target: ssh://pi@raspberrypi.local
        num_threads: 4
        known_hosts: ~/.ssh/known_hosts
      pixel7:
        target: adb://R5CT1234
        benchmark_binary: ./benchmark_model
      nano:
        target: micro
        board: nano33ble
        graph: kws_int8.tflite    # optional: this device's own models (a path or a list)

>>> [d.name for d in devices_from_data({"devices": {"here": {"target": "local"}}}, "f.yaml")]
['here']
"""

import json
import os
import re
from dataclasses import dataclass, field

from device_bench.errors import BenchError
from device_bench.fileio import read_text_file
from device_bench.yamlfile import parse_yaml

FLEET_FILE_MAX_BYTES = 256 * 1024
MAX_DEVICES = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The keys of a device entry that are not options.
FILE_KEYS = {"target", "graph"}


@dataclass
class Device:
    """One device of a fleet: a name for its row, its --target value, its own options (run
    settings and target options, over the fleet-wide ones) and optionally its own models."""
    name: str
    target: str
    options: dict = field(default_factory=dict)
    graphs: list = field(default_factory=list)


def load_fleet(path):
    """The Devices of a fleet file (format in this module's docstring); BenchError if invalid."""
    text = read_text_file(path, FLEET_FILE_MAX_BYTES, label="fleet file ")
    return devices_from_data(_parse(path, text), path)


def _parse(path, text):
    where = f"fleet file {path}"
    if not os.fspath(path).lower().endswith(".json"):
        return parse_yaml(text, where, "; or write the fleet as JSON in a .json file")
    try:
        return json.loads(text)
    except ValueError as error:
        raise BenchError(f"{where}: not valid JSON ({error})") from None
    except RecursionError:
        raise BenchError(f"{where}: nested too deeply to be a fleet file") from None


def devices_from_data(data, path):
    """Devices from a parsed fleet file; relative `graph` paths are read from the file's folder."""
    where = f"fleet file {path}"
    if not isinstance(data, dict) or "devices" not in data:
        raise BenchError(f"{where}: expected a top-level 'devices:' mapping of device names to "
                         "{target: ..., options}")
    unknown = sorted(map(str, set(data) - {"devices"}))
    if unknown:
        raise BenchError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; a fleet file "
                         "holds only 'devices:'")
    entries = data["devices"]
    if not isinstance(entries, dict) or not entries:
        raise BenchError(f"{where}: 'devices:' must map at least one device name to "
                         "{target: ..., options}")
    if len(entries) > MAX_DEVICES:
        raise BenchError(f"{where}: {len(entries)} devices, more than the {MAX_DEVICES} a fleet "
                         "runs at once; split it into several files")
    folder = os.path.dirname(os.path.abspath(path))
    return [_device_from_entry(where, folder, name, entry) for name, entry in entries.items()]


def _device_from_entry(where, folder, name, entry):
    if not isinstance(name, str) or not _NAME.match(name):
        raise BenchError(f"{where}: device name {name!r}: use up to 64 letters, digits, '_', "
                         "'.' or '-', starting with a letter or digit")
    where = f"{where}, device {name!r}"
    if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
        raise BenchError(f"{where}: expected a mapping with a target (e.g. target: "
                         f"ssh://pi@raspberrypi.local) and options; got {entry!r:.80}")
    options = {key: value for key, value in entry.items() if key not in FILE_KEYS}
    return Device(name, entry["target"], options,
                  [os.path.join(folder, g) for g in graph_list(where, entry.get("graph", []))])


def graph_list(where, graphs):
    """A device's `graph` value (a path or a list of paths) as a list; BenchError if neither."""
    graphs = [graphs] if isinstance(graphs, str) else graphs
    if not isinstance(graphs, list) or not all(isinstance(g, str) and g for g in graphs):
        raise BenchError(f"{where}: graph must be a .tflite path or a list of paths")
    return graphs
