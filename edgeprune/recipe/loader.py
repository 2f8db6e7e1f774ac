"""Reading a recipe: YAML (`yaml.safe_load`'s constructor only, with bounds: `safeyaml`), `--set`
overrides, schema check, defaults, files.

>>> recipe = load_recipe("recipes/quickstart.yaml", overrides=["pruning.fine_tune.epochs=1"])  # doctest: +SKIP
>>> recipe["pruning"]["fine_tune"]["epochs"]                                                   # doctest: +SKIP
1
"""

import copy
import hashlib
import json
import os
import re
import warnings
import zipfile

from device_bench.fileio import read_regular_file
from edgeprune.recipe import safeyaml
from edgeprune.recipe.pruning_options import pruning_problems
from edgeprune.recipe.schema import SCHEMA, RecipeError, check, did_you_mean

# Sections that exist with their defaults even when a recipe leaves them out; a missing `pruning`
# or `benchmark` section means that stage does not run.
ALWAYS_PRESENT = ("data", "training", "strip", "quantize", "export", "report")


class Recipe(dict):
    """A checked recipe with every default filled in; `path` and `folder` say where it came from.

    Relative paths inside the recipe are relative to the recipe's folder (see `resolve`).
    """

    def __init__(self, document, path, overrides=()):
        super().__init__(document)
        self.path = os.fspath(path)
        self.folder = os.path.dirname(os.path.abspath(self.path))
        self.overrides = list(overrides)

    @property
    def name(self):
        """The `name` key (checked against the schema's NAME_PATTERN), else the file's name made
        safe as one folder name: `runs/<name>` never leaves `runs/`."""
        if self.get("name"):
            return self["name"]
        stem = os.path.splitext(os.path.basename(self.path))[0]
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")[:100] or "recipe"

    def resolve(self, relative):
        return os.path.normpath(os.path.join(self.folder, os.path.expanduser(relative)))

    def input_files(self):
        """`{recipe key: absolute path}` of every file the run reads besides the recipe: the
        `.keras` model, the npz data, the factories' source files (a `module:function` factory:
        the module's own file). A run folder records their hashes and resumes only with the
        same contents."""
        files = {}
        for section, key in (("model", "keras_file"), ("model", "factory"), ("data", "path"),
                             ("data", "factory")):
            value = self.get(section, {}).get(key)
            if value is None or (section == "data" and key == "path"
                                 and self["data"].get("source") != "npz"):
                continue
            if key == "factory":
                module = value.rpartition(":")[0]
                path = self.resolve(module) if module.endswith(".py") else _module_file(module)
            else:
                path = self.resolve(value)
            if path is not None:
                files[f"{section}.{key}"] = path
        return files

    def fingerprint(self):
        """Hash of the effective settings: a run folder only resumes the recipe that made it."""
        # `distribution:` differs between the processes of one run (process_id).
        settings = {key: value for key, value in self.items() if key != "distribution"}
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _module_file(module):
    """The source file of an importable module (its package's parents are imported), or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return origin if origin and os.path.isfile(origin) else None


def load_recipe(path, overrides=()):
    """Reads, overrides, checks and completes the recipe at `path`; raises `RecipeError`.

    `overrides` are `"key.path=value"` strings; the value is read as YAML (`1`, `true`, `[1, 4]`).
    """
    path = os.fspath(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except OSError:
        pass  # read_regular_file says what
    # A regular file of at most safeyaml.MAX_BYTES (a FIFO or /dev/zero is refused unread).
    data = read_regular_file(path, safeyaml.MAX_BYTES, RecipeError)
    document = safeyaml.load(safeyaml.decode(data, path), path)
    source = path if not overrides else f"{path} (with --set {' '.join(overrides)})"
    if document is None and overrides:
        document = {}  # an empty file completed by --set
    for override in overrides:
        apply_override(document, override, source)
    try:
        check(document, source)
    except RecipeError as error:
        # Files named are checked too, so one run of `edgeprune validate` lists every problem.
        missing = _missing_files_of(document, path)
        if missing:
            raise RecipeError("\n  ".join([str(error), *missing])) from None
        raise
    recipe = Recipe(with_defaults(SCHEMA, document), path, overrides)
    for section in ALWAYS_PRESENT:
        recipe[section] = with_defaults(SCHEMA["properties"][section], recipe.get(section, {}))
    _check_references(recipe, source)
    return recipe


def apply_override(document, override, source):
    """Sets `a.b.c=value` inside `document` (value parsed as YAML), creating sections on the way."""
    key, sep, value = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise RecipeError(f"{source}: override {override!r} must look like key.path=value")
    node = document
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            where = ".".join(parts[:depth]) or "the recipe"
            raise RecipeError(f"{source}: override {override!r}: {where} is not a section "
                              "(a mapping of keys)")
        if depth < len(parts) - 1:
            node = node.setdefault(part, {})
    node[parts[-1]] = safeyaml.load(value, f"{source}: override {override!r}", where=parts)


def with_defaults(schema, value):
    """A deep copy of `value` with the schema's defaults filled into every object present (an
    object among `anyOf` choices too: a latency budget's settings)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" not in schema:
        objects = [choice for choice in schema.get("anyOf", []) if "properties" in choice]
        schema = objects[0] if len(objects) == 1 else schema
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = with_defaults(sub, value[key])
    elif isinstance(value, list) and "items" in schema:
        value = [with_defaults(schema["items"], item) for item in value]
    return value


def _check_references(recipe, source):
    """Files that must exist and settings that only make sense together."""
    problems = []
    model = recipe["model"]
    if "keras_file" in model:
        if not model["keras_file"].endswith(".keras"):
            problems.append(f"model.keras_file: {model['keras_file']!r} must be a .keras file "
                            "(Keras 3 format; loaded with safe_mode on)")
        problems += _missing_file(recipe, "model.keras_file", model["keras_file"])
    if "factory" in model:
        problems += _missing_factory_file(recipe, "model.factory", model["factory"])
    if "args" in model and "factory" not in model:
        problems.append("model.args: only used with model.factory")
    if "application" in model:
        problems += _check_application(model["application"]["name"])

    data = recipe["data"]
    needs = {"npz": "path", "factory": "factory"}.get(data["source"])
    if needs and needs not in data:
        problems.append(f"data.{needs}: required when data.source is {data['source']!r}")
    for key, source_kind in (("path", "npz"), ("factory", "factory"), ("args", "factory")):
        if key in data and data["source"] != source_kind:
            problems.append(f"data.{key}: only used with data.source: {source_kind}")
    if data["source"] == "npz" and "path" in data:
        problems += _missing_file(recipe, "data.path", data["path"])
    if data["source"] == "factory" and "factory" in data:
        problems += _missing_factory_file(recipe, "data.factory", data["factory"])

    sections = [("training", recipe["training"]),
                ("quantize.aware_training", recipe["quantize"]["aware_training"])]
    if "pruning" in recipe:
        sections.append(("pruning.fine_tune", recipe["pruning"]["fine_tune"]))
    problems += [problem for key, settings in sections for problem in _check_loss(key, settings)]
    problems += pruning_problems(recipe.get("pruning"))
    quantize = recipe["quantize"]
    if quantize["aware_training"]["epochs"] and quantize["mode"] != "int8":
        problems.append("quantize.aware_training: quantization-aware training is for "
                        f"mode: int8, not {quantize['mode']!r}")
    if recipe["export"]["c_array"] and recipe["quantize"]["sparse_storage"]:
        problems.append("export.c_array: TFLite Micro has no DENSIFY kernel, so a C array needs "
                        "quantize.sparse_storage: false")
    if "keras_file" in model and os.path.isfile(recipe.resolve(model["keras_file"])) and \
            not zipfile.is_zipfile(recipe.resolve(model["keras_file"])):
        problems.append(f"model.keras_file: {model['keras_file']} is not a Keras 3 model file "
                        "(a .keras file is a zip archive)")
    problems += _check_benchmark(recipe.get("benchmark", {}).get("targets", []))
    problems += _check_backend(recipe)
    if problems:
        raise RecipeError(safeyaml.problem_list(source, problems, "invalid recipe"))
    warn_host_key_checks(recipe)


def _check_backend(recipe):
    """The backend's package, and ONNX's for `export.onnx`, must be installed."""
    import keras

    from edgeprune.quantize.onnx_export import missing_packages
    from edgeprune.recipe.backend import backend_problem

    backend = recipe.get("backend")
    problems = [backend_problem(backend)] if backend and backend_problem(backend) else []
    missing = missing_packages(backend or keras.config.backend())
    if recipe["export"]["onnx"] and missing:
        problems.append(f"export.onnx: needs {', '.join(missing)}, not installed (pip install "
                        "'edgeprune[onnx]')")
    return problems


class HostKeyWarning(UserWarning):
    """A recipe turns SSH host-key checking off (`check_host_key: false`)."""


# Shown every time, not once per place in the code: each recipe that turns the check off says so.
warnings.filterwarnings("always", category=HostKeyWarning)


def host_key_warnings(recipe):
    """One line per benchmark target of `recipe` that turns SSH host-key checking off."""
    return [f"{recipe.path}: benchmark.targets[{i}] ({spec['target']}): check_host_key: false "
            "turns SSH host-key checking off, so a machine posing as the board would get the "
            "models and run the commands; add the board to known_hosts instead"
            for i, spec in enumerate(recipe.get("benchmark", {}).get("targets", []))
            if spec.get("check_host_key") is False]


def warn_host_key_checks(recipe):
    for line in host_key_warnings(recipe):
        warnings.warn(line, HostKeyWarning, stacklevel=4)  # where load_recipe was called


def _check_benchmark(targets):
    """Each benchmark target built as the benchmark stage will build it (no connection is made):
    an unknown board, a bad boards file or a run setting out of range fail here, not after
    training."""
    from device_bench.api import SETTING_NAMES, make_target
    from device_bench.errors import BenchError
    from device_bench.settings import RunSettings

    problems, first = [], {}
    for index, spec in enumerate(targets):
        if first.setdefault(spec["target"], index) != index:  # they run at once, one JSON each
            problems.append(f"benchmark.targets[{index}]: {spec['target']} is already "
                            f"benchmark.targets[{first[spec['target']]}]; list each target once")
            continue
        settings = {k: v for k, v in spec.items() if k in SETTING_NAMES}
        options = {k: v for k, v in spec.items() if k not in SETTING_NAMES and k != "target"}
        try:
            RunSettings(**settings)
            make_target(spec["target"], **options)
        except BenchError as error:
            problems.append(f"benchmark.targets[{index}]: {error}")
        except (TypeError, ValueError) as error:
            problems.append(f"benchmark.targets[{index}]: {type(error).__name__}: {error}")
    return problems


def _missing_files_of(document, path):
    """Best effort on a recipe that failed the schema: its named files that do not exist."""
    if not isinstance(document, dict):
        return []
    recipe, problems = Recipe(document, path), []
    for section, key in (("model", "keras_file"), ("model", "factory"), ("data", "path"),
                         ("data", "factory")):
        value = document.get(section, {}).get(key) if isinstance(document.get(section),
                                                                  dict) else None
        if not isinstance(value, str):
            continue
        if key == "factory":
            problems += _missing_factory_file(recipe, f"{section}.{key}", value)
        else:
            problems += _missing_file(recipe, f"{section}.{key}", value)
    return problems


def _missing_file(recipe, key, relative):
    if os.path.isfile(recipe.resolve(relative)):
        return []
    return [f"{key}: file not found: {relative} (looked for {recipe.resolve(relative)})"]


def _missing_factory_file(recipe, key, factory):
    module = factory.rpartition(":")[0]
    return _missing_file(recipe, key, module) if module.endswith(".py") else []


def _check_loss(key, settings):
    import keras

    try:
        keras.losses.get(settings["loss"])
        return []
    except ValueError:
        names = [n for n in dir(keras.losses) if n.islower() and not n.startswith("_")]
        return [f"{key}.loss: {settings['loss']!r} is not a Keras loss"
                f"{did_you_mean(settings['loss'], names)}"]


def _check_application(name):
    import keras

    names = [n for n in dir(keras.applications) if n[:1].isupper()]
    if name in names:
        return []
    return [f"model.application.name: {name!r} is not in keras.applications{did_you_mean(name, names)}"]
