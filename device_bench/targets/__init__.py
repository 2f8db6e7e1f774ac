"""Where a benchmark runs: the built-in targets, registered in registry.py's table.

`local`, `ssh://user@host[:port]`, `adb://SERIAL`, `micro` or `serial://PORT` (a real
microcontroller running the benchmark sketch). Each class is named by module path, so importing
this package loads none of them.

>>> parse_target("ssh://pi@raspberrypi.local:2222")
('ssh', 'pi@raspberrypi.local:2222')
>>> usage_list()
'local, ssh://user@host[:port], adb://SERIAL, micro or serial://PORT'
"""

import sys

from device_bench.targets.registry import (TargetOption, parse_target, register_target,
                                           usage_list)

__all__ = ["parse_target", "register_target", "usage_list", "TargetOption"]

_BOARD = TargetOption("board", help="board name (built-in or from --boards_file)")
_BOARDS_FILE = TargetOption("boards_file", help="YAML file with your own boards")
_PYTHON = TargetOption("python", default=sys.executable,
                       help="the Python that runs the models in a child process; it needs "
                            "ai-edge-litert (local) or tflite-micro (micro)")
_POSITIVE = {"exclusiveMinimum": 0}

register_target(
    "local", "device_bench.targets.local:LocalTarget", "this computer (LiteRT in a child process)",
    options=[_PYTHON], on_host=True)
register_target(
    "ssh", "device_bench.targets.ssh:SshTarget",
    "a Linux board such as a Raspberry Pi, over SSH (the board needs ai-edge-litert and numpy)",
    address="user@host[:port]",
    options=[
        TargetOption("remote_python", default="python3", help="the board's Python"),
        TargetOption("key_filename", flag="ssh_key",
                     help="private key file (default: agent and ~/.ssh keys)"),
        TargetOption("known_hosts", flag="ssh_known_hosts",
                     help="known_hosts file (default ~/.ssh/known_hosts)"),
        TargetOption("check_host_key", bool, True, flag="ssh_no_host_key_check",
                     help="accept any host key (insecure; trusted networks only)"),
        TargetOption("remote_temp_root", default="/tmp", help="where the board's temp dir goes"),
        TargetOption("timeout", float, 10.0, "seconds to connect", limits=_POSITIVE),
    ])
register_target(
    "adb", "device_bench.targets.adb:AdbTarget",
    "an Android phone running LiteRT's benchmark_model binary",
    address="SERIAL", address_help="see `adb devices`",
    options=[
        TargetOption("benchmark_binary",
                     help="the official benchmark_model binary for the phone"),
        TargetOption("taskset_mask", flag="taskset",
                     help="CPU mask for taskset, e.g. f0 for the big cores"),
        TargetOption("adb", default="adb", help="adb executable, a path or a name on PATH"),
    ])
register_target(
    "micro", "device_bench.targets.micro:MicroTarget",
    "TFLite Micro on this computer: ops, tensor arena and, with --board, whether it fits",
    options=[_BOARD, _BOARDS_FILE, _PYTHON], on_host=True)
register_target(
    "serial", "device_bench.targets.serial:SerialTarget",
    "a microcontroller running the benchmark sketch, read over a serial port",
    address="PORT", address_help="e.g. /dev/ttyACM0 or COM3",
    options=[
        TargetOption("baudrate", int, 115200, "baud rate", limits={"minimum": 1}),
        TargetOption("timeout", float, 60.0, "seconds to wait for the board's results",
                     limits=_POSITIVE),
        _BOARD, _BOARDS_FILE,
    ])
