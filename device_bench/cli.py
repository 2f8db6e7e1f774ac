"""`device-bench`: the command line, with benchmark_model's flag names.

    device-bench --graph=m.tflite --num_threads=1 --num_runs=50 --output_json=result.json
    device-bench --graph=a.tflite,b.tflite --target=ssh://pi@raspberrypi.local --num_threads=4
    device-bench --graph=m.tflite --target=adb://SERIAL --benchmark_binary=./benchmark_model
    device-bench --graph=m.tflite --target=micro --board=nano33ble
    device-bench --graph=m.tflite --target=serial:///dev/ttyACM0 --board=nano33ble
    device-bench --graph=m.tflite --target=local --target=ssh://pi@raspberrypi.local  # a fleet
    device-bench --graph=m.tflite --fleet=fleet.yaml --output_svg=latency.svg

Several --target values or a --fleet file benchmark several devices at once, one row each.
Exit status: 0 done, 1 a model cannot run on or does not fit the board (micro), 2 an error
(in a fleet: any device failed; the others' rows are still printed and written), 130 stopped
by Ctrl-C (a fleet writes nothing then).
"""

import argparse
import sys

from device_bench import api, fleet, fleet_file, plot, report
from device_bench.errors import BenchError
from device_bench.fileio import atomic_write
from device_bench.runner import DEFAULTS
from device_bench.targets import registry

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_bool(text):
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_input_shapes(names, shapes):
    """benchmark_model's --input_layer=a,b --input_layer_shape=1,224,224,3:1,10 as {name: dims}."""
    if not names and not shapes:
        return {}
    names, shapes = names.split(","), shapes.split(":")
    if len(names) != len(shapes):
        raise BenchError(f"--input_layer names {len(names)} inputs but --input_layer_shape gives "
                         f"{len(shapes)} shapes; give one shape per input, separated by ':'")
    try:
        return {name: [int(d) for d in shape.split(",")] for name, shape in zip(names, shapes)}
    except ValueError:
        raise BenchError(f"--input_layer_shape={':'.join(shapes)} is not a list of integer shapes "
                         "like 1,224,224,3:1,10") from None


def build_parser():
    p = argparse.ArgumentParser(prog="device-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", action="append", default=[],
                   help="a .tflite file; several (repeat or comma-separate) are run interleaved "
                        "and compared with the first")
    p.add_argument("--target", action="append",
                   help=target_help() + ". Repeat it to benchmark several devices at once")
    devices = p.add_argument_group("several devices at once (a fleet)")
    devices.add_argument("--fleet", help="a YAML (or .json) file naming devices, each with a "
                                         "target and options (see device_bench/fleet_file.py)")
    devices.add_argument("--device_timeout", type=float,
                         help="seconds after which a device is stopped and its row says so "
                              "(default: each target's own limits)")
    runs = p.add_argument_group("runs (benchmark_model's flags)")
    for name, kind in (("num_threads", int), ("warmup_runs", int), ("warmup_min_secs", float),
                       ("num_runs", int), ("min_secs", float), ("max_secs", float),
                       ("seed", int)):
        runs.add_argument("--" + name, type=kind, default=DEFAULTS[name],
                          help=f"default {DEFAULTS[name]}")
    runs.add_argument("--use_xnnpack", type=parse_bool, nargs="?", const=True,
                      default=DEFAULTS["use_xnnpack"], help="true (default) or false")
    runs.add_argument("--input_layer", default="", help="input names, comma-separated")
    runs.add_argument("--input_layer_shape", default="",
                      help="shapes for dynamic inputs, e.g. 1,224,224,3:1,10")
    out = p.add_argument_group("output")
    out.add_argument("--output_json", help="write the result (schema in schema.py) here")
    out.add_argument("--output_csv", help="write one CSV row per model here")
    out.add_argument("--output_svg", help="fleet: write a chart of latency per device here")
    add_target_flags(p)
    return p


def target_help():
    """--target's help: every registered target's form and what it is."""
    return "where the models run (default local): " + "; ".join(
        f"{t.usage_with_help}: {t.description}" for t in registry.targets())


def add_target_flags(parser):
    """The registered targets' options as flags, one group per set of targets sharing flags."""
    groups = {}
    for flag, users in registry.flag_table().items():
        schemes = tuple(scheme for scheme, _ in users)
        if schemes not in groups:
            title = " and ".join(schemes) + (" targets" if len(schemes) > 1 else " target")
            groups[schemes] = parser.add_argument_group(title)
        helps = {option.cli_help for _, option in users}
        text = helps.pop() if len(helps) == 1 else "; ".join(
            f"{scheme}: {option.cli_help}" for scheme, option in users)
        option = users[0][1]
        if option.type is bool:
            groups[schemes].add_argument("--" + flag, dest=flag, action="store_const",
                                         const=not option.default, help=text)
        else:
            groups[schemes].add_argument("--" + flag, dest=flag, type=option.type, help=text)


def options_from_args(args):
    """benchmark() keyword arguments from parsed flags (unset target flags are left out)."""
    options = {name: getattr(args, name) for name in api.SETTING_NAMES if name != "input_shapes"}
    options["input_shapes"] = parse_input_shapes(args.input_layer, args.input_layer_shape)
    for flag, users in registry.flag_table().items():
        if getattr(args, flag) is not None:
            options[users[0][1].name] = getattr(args, flag)
    return options


def main(argv=None):
    args = build_parser().parse_args(argv)
    graphs = [g for value in args.graph for g in value.split(",") if g]
    targets = args.target or ["local"]
    try:
        if args.fleet or len(targets) > 1:
            return run_fleet(args, graphs)
        if args.device_timeout is not None or args.output_svg:
            raise BenchError("--device_timeout and --output_svg are for several devices at "
                             "once: give --target more than once, or --fleet")
        result = api.benchmark(graphs, target=targets[0], **options_from_args(args))
        print(report.format_table(result))
        if args.output_json:
            atomic_write(args.output_json, result.to_json())
        if args.output_csv:
            atomic_write(args.output_csv, report.to_csv(result))
    except BenchError as error:
        print(f"device-bench: error: {error}", file=sys.stderr)
        return 2
    return _fit_status(result)


def _fit_status(result):
    """1 when a model cannot run on, or does not fit, the board (useful in CI), else 0."""
    return 1 if any(m.micro is not None and m.micro.fits is False for m in result.models) else 0


def run_fleet(args, graphs):
    """Several devices at once: the table, the outputs, and 2 if any device failed."""
    devices = (fleet_file.load_fleet(args.fleet) if args.fleet else []) + (args.target or [])
    try:
        result = fleet.benchmark_fleet(graphs, devices, device_timeout=args.device_timeout,
                                       **options_from_args(args))
    except KeyboardInterrupt:
        print("device-bench: interrupted: every device was stopped; nothing was written",
              file=sys.stderr)
        return 130
    print(report.format_fleet_table(result))
    for path, text in ((args.output_json, result.to_json),
                       (args.output_csv, lambda: report.fleet_to_csv(result)),
                       (args.output_svg, lambda: plot.fleet_svg(result))):
        if path:
            atomic_write(path, text())
    if result.failed:
        names = ", ".join(device.name for device in result.failed)
        print(f"device-bench: error: {len(result.failed)} of {len(result.devices)} devices "
              f"failed ({names}); their rows say why", file=sys.stderr)
        return 2
    return max([_fit_status(device.result) for device in result.devices], default=0)


if __name__ == "__main__":
    sys.exit(main())
