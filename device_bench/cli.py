"""`device-bench`: the command line, with benchmark_model's flag names.

    device-bench --graph=m.tflite --num_threads=1 --num_runs=50 --output_json=result.json
    device-bench --graph=a.tflite,b.tflite --target=ssh://pi@raspberrypi.local --num_threads=4
    device-bench --graph=m.tflite --target=adb://SERIAL --benchmark_binary=./benchmark_model
    device-bench --graph=m.tflite --target=micro --board=nano33ble
    device-bench --graph=m.tflite --target=serial:///dev/ttyACM0 --board=nano33ble

Exit status: 0 done, 1 a model cannot run on or does not fit the board (micro), 2 an error.
"""

import argparse
import sys

from device_bench import api, report
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
    p.add_argument("--graph", action="append", required=True,
                   help="a .tflite file; several (repeat or comma-separate) are run interleaved "
                        "and compared with the first")
    p.add_argument("--target", default="local", help=target_help())
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
    try:
        result = api.benchmark(graphs, target=args.target, **options_from_args(args))
        print(report.format_table(result))
        if args.output_json:
            atomic_write(args.output_json, result.to_json())
        if args.output_csv:
            atomic_write(args.output_csv, report.to_csv(result))
    except BenchError as error:
        print(f"device-bench: error: {error}", file=sys.stderr)
        return 2
    # A model that cannot run on, or does not fit, the board fails the command (useful in CI).
    return 1 if any(m.micro is not None and m.micro.fits is False for m in result.models) else 0


if __name__ == "__main__":
    sys.exit(main())
