"""The `edgeprune` command: run, validate, report and inspect.

    edgeprune run recipes/quickstart.yaml --out runs/quickstart
    edgeprune run recipes/quickstart.yaml --out runs/q --set pruning.fine_tune.epochs=1
    edgeprune validate recipes/*.yaml
    edgeprune report runs/quickstart [runs/other ...] [--out runs/compare]
    edgeprune inspect runs/quickstart/stripped.keras

Exit status: 0 success, 1 an invalid recipe, missing file or missing library function,
130 interrupted (run the same command again to resume).
"""

import argparse
import json
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(prog="edgeprune", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) a recipe into a folder")
    run.add_argument("recipe")
    run.add_argument("--out", help="run folder (default: runs/<recipe name>)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a recipe key, e.g. pruning.fine_tune.epochs=1 (repeatable)")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage")
    run.add_argument("--restart", action="store_true",
                     help="discard finished stages in the folder and start over")

    validate = commands.add_parser("validate", help="check recipes without running them")
    validate.add_argument("recipes", nargs="+")
    validate.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE")

    report = commands.add_parser("report", help="(re)write the report of one or more runs")
    report.add_argument("runs", nargs="+", help="run folders; several are compared")
    report.add_argument("--out", help="report folder (default: <first run>/report)")
    report.add_argument("--formats", default="markdown,html", help="markdown,html")

    inspect = commands.add_parser("inspect", help="layers, parameters, sparsity and MACs")
    inspect.add_argument("model", help="a .keras file (loaded with safe_mode on)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _run(args):
    from edgeprune.recipe import StageFailed, load_recipe, run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = args.out or os.path.join("runs", recipe.name)
    try:
        state = run_recipe(recipe, out, until=args.until, restart=args.restart)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished stages and the last epoch checkpoint are kept in {out}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except StageFailed as error:
        print(f"edgeprune run: {error}\nfinished stages are kept in {out}; fix the cause and run "
              "the same command again to resume", file=sys.stderr)
        return 1
    reports = state["finished"].get("report", {}).get("outputs", {})
    print(f"done: {', '.join(state['finished'])} in {out}")
    for file in reports.values():
        if file.endswith((".md", ".html")):
            print(f"report: {os.path.join(out, file)}")
    return 0


def _validate(args):
    from edgeprune.recipe import RecipeError, enabled_stages, load_recipe

    status = 0
    for path in args.recipes:
        try:
            recipe = load_recipe(path, args.overrides)
        except RecipeError as error:
            print(error, file=sys.stderr)
            status = 1
            continue
        stages = " -> ".join(stage.name for stage in enabled_stages(recipe))
        print(f"{path}: ok ({stages})")
    return status


def _report(args):
    from edgeprune.recipe import write_report

    out = args.out or os.path.join(args.runs[0], "report")
    for path in write_report(args.runs, out, formats=args.formats.split(",")):
        print(path)
    return 0


def _inspect(args):
    import keras

    from edgeprune.recipe import format_stats, model_stats

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"{args.model}: no such file")
    stats = model_stats(keras.models.load_model(args.model, compile=False, safe_mode=True))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def main(argv=None):
    """Entry point of the `edgeprune` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    command = {"run": _run, "validate": _validate, "report": _report, "inspect": _inspect}
    from edgeprune.recipe import RecipeError

    try:
        return command[args.command](args)
    except (RecipeError, FileNotFoundError) as error:
        print(f"edgeprune {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
