"""The `edgeprune` command: run, validate, report and inspect recipes and models.

Exit status: 0 success, 1 an invalid recipe, missing file or failed stage, 130 interrupted (run
the same command again to resume).
"""

import argparse
import importlib.util
import json
import os
import sys

from edgeprune.recipe.schema import BACKENDS

EPILOG = """\
examples:
  edgeprune recipes                                        list the shipped recipes
  edgeprune run recipes/quickstart.yaml --out runs/quickstart
  edgeprune run recipes/quickstart.yaml --set pruning.fine_tune.epochs=1 --until strip
  edgeprune run recipes/quickstart.yaml --backend jax       train on JAX (or torch)
  edgeprune validate recipes/*.yaml
  edgeprune report runs/quickstart runs/unstructured_80 --out runs/compare
  edgeprune inspect runs/quickstart/stripped.keras
  edgeprune inspect runs/quickstart/model.tflite

TensorFlow's own log lines are hidden; --verbose (or EDGEPRUNE_VERBOSE=1) shows them.
"""

RECIPES_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "recipes")


def _version():
    """edgeprune's version and those of the libraries it runs on, without importing them."""
    from importlib import metadata

    from edgeprune import __version__

    found = []
    for name in ("keras", "tensorflow", "ai-edge-litert"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    python = ".".join(map(str, sys.version_info[:3]))
    return f"edgeprune {__version__} ({', '.join(found)}; Python {python})"


def _parser():
    # Importing the stages registers them; they import TensorFlow only when they run.
    from edgeprune.recipe.stages import stage_names

    parser = argparse.ArgumentParser(
        prog="edgeprune", description=__doc__.split("\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also print TensorFlow's own log lines (hidden by default)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text, description=None):
        return commands.add_parser(name, help=help_text, description=description or help_text,
                                   parents=[common])

    run = command("run", "run (or resume) a recipe into a run folder",
                  "Runs a recipe's stages in order into a run folder, resuming a folder that an "
                  "interrupted run left, and prints a summary of the results at the end.")
    run.add_argument("recipe", help="the recipe's YAML file (see `edgeprune recipes`)")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<recipe name>)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a recipe key, value read as YAML, e.g. "
                          "pruning.fine_tune.epochs=1 (repeatable; checked like the file)")
    run.add_argument("--until", metavar="STAGE", choices=stage_names(),
                     help="stop after this stage; the next run continues (one of: "
                          f"{', '.join(stage_names())})")
    run.add_argument("--restart", action="store_true",
                     help="discard the folder's finished stages and checkpoints and start over")
    run.add_argument("--backend", choices=BACKENDS,
                     help="the Keras backend to train on (overrides the recipe's backend:)")

    validate = command("validate", "check recipes without running them",
                       "Checks recipes against the schema, the files they name and the options "
                       "their pruning settings take; prints every problem of a recipe at once.")
    validate.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipe YAML files")
    validate.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE", help="override a key in every recipe, as for run")

    report = command("report", "(re)write the report of one or more run folders",
                     "Writes report.md and report.html (plots embedded) from run folders' "
                     "state.json; several runs are compared in one report.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folders; several are compared")
    report.add_argument("--out", metavar="DIR", help="report folder (default: <first run>/report)")
    report.add_argument("--formats", default="markdown,html",
                        help="comma-separated: markdown, html (default: both)")

    inspect = command("inspect", "layers, parameters, sparsity and MACs of a model file",
                      "A .keras model: per layer parameters, nonzero parameters, kernel sparsity "
                      "and MACs. A .tflite model (read without TensorFlow): sizes, inputs and "
                      "outputs, operators and the sparsity of each stored kernel.")
    inspect.add_argument("model", help="a .keras file (loaded with safe_mode on) or a .tflite file")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")

    recipes = command("recipes", "list the shipped recipes with what each one shows")
    recipes.add_argument("--folder", default=RECIPES_FOLDER,
                         help=f"where to look for recipes (default: {RECIPES_FOLDER})")
    return parser


def _run(args):
    from edgeprune.recipe import StageFailed, load_recipe, run_recipe
    from edgeprune.recipe.report_text import summary_text

    overrides = args.overrides + ([f"backend={args.backend}"] if args.backend else [])
    recipe = load_recipe(args.recipe, overrides)
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
    print(f"done: {', '.join(state['finished'])} in {out}")
    print(summary_text(out))
    return 0


def _validate(args):
    from edgeprune.recipe import RecipeError, enabled_stages, load_recipe
    from edgeprune.recipe.preflight import check as check_can_run

    status = 0
    for path in args.recipes:
        try:
            recipe = load_recipe(path, args.overrides)
            check_can_run(recipe)  # what run's stages would refuse, found without training
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
    try:
        os.stat(args.model)
    except FileNotFoundError:
        raise FileNotFoundError(f"{args.model}: no such file") from None
    except OSError:
        pass  # the readers name an unreadable or damaged file (ModelFileError)
    if args.model.endswith(".tflite"):
        from edgeprune.recipe.tflitestats import format_tflite_stats, tflite_stats

        stats = tflite_stats(args.model)
        print(json.dumps(stats, indent=2) if args.json else format_tflite_stats(stats))
        return 0
    from edgeprune.model.saving import load_keras_file
    from edgeprune.recipe import format_stats, model_stats

    stats = model_stats(load_keras_file(args.model))  # ModelFileError names a bad file
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _recipes(args):
    import yaml

    paths = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder)
                   if f.endswith((".yaml", ".yml"))) if os.path.isdir(args.folder) else []
    if not paths:
        raise FileNotFoundError(f"{args.folder}: no recipes there; pass --folder DIR")
    rows = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                document = yaml.safe_load(f)
        except yaml.YAMLError as error:
            document = {"description": f"(not valid YAML: {str(error).splitlines()[0]})"}
        document = document if isinstance(document, dict) else {}
        name = document.get("name") or os.path.splitext(os.path.basename(path))[0]
        rows.append((name, document.get("description", ""), os.path.relpath(path)))
    width = max(len(name) for name, _, _ in rows)
    for name, description, path in rows:
        print(f"{name:<{width}}  {description}\n{'':<{width}}  {path}")
    first = next((row for row in rows if row[0] == "quickstart"), rows[0])
    print(f"\nrun one: edgeprune run {first[2]}")
    return 0


def _choose_backend(args):
    """Sets KERAS_BACKEND to the run's backend (--backend, else the recipe's `backend:` key)
    before Keras is first imported, so the run stays in this process; a recipe whose backend
    differs from the one Keras got runs in a child process (`edgeprune.recipe.backend`)."""
    if "keras" in sys.modules:
        return
    backend = args.backend
    for override in args.overrides:
        key, _, value = override.partition("=")
        if key.strip() == "backend":
            backend = backend or value.strip()
    if backend is None:
        from device_bench.fileio import read_regular_file
        from edgeprune.recipe import safeyaml
        from edgeprune.recipe.schema import RecipeError

        try:  # read as the loader reads it: a regular file, bounded YAML
            data = read_regular_file(args.recipe, safeyaml.MAX_BYTES, RecipeError)
            document = safeyaml.load(safeyaml.decode(data, args.recipe), args.recipe)
        except (OSError, RecipeError):
            return  # the loader reports a file it cannot read
        backend = document.get("backend") if isinstance(document, dict) else None
    if backend in BACKENDS and importlib.util.find_spec(backend) is not None:
        os.environ["KERAS_BACKEND"] = backend


COMMANDS = {"run": _run, "validate": _validate, "report": _report, "inspect": _inspect,
            "recipes": _recipes}


def main(argv=None):
    """Entry point of the `edgeprune` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "run":
        _choose_backend(args)
    if args.verbose:
        from edgeprune import tf_logs

        tf_logs.set_verbose(True)
    from edgeprune.recipe.schema import RecipeError
    from device_bench.errors import ModelFileError

    try:
        return COMMANDS[args.command](args)
    except (RecipeError, FileNotFoundError, ModelFileError) as error:
        print(f"edgeprune {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
