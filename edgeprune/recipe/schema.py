"""The recipe schema (JSON Schema, checked with `jsonschema`) and its readable error messages.

Every section and key a recipe may use is listed here with its type, allowed values and default;
`check(document, source)` raises one `RecipeError` listing every problem, each with the file, the
key path, what is allowed and, for a misspelt key or value, a "did you mean".

>>> check({"model": {"factory": "models.py:cnn"}, "quantize": {"mdoe": "int8"}}, "r.yaml")
Traceback (most recent call last):
...
edgeprune.recipe.schema.RecipeError: r.yaml: invalid recipe
  quantize.mdoe: unknown key; allowed: aware_training, calibration_samples, int8_io, mode, sparse_storage (did you mean 'mode'?)
"""

import difflib
import math

import jsonschema

from device_bench.api import options_schema as benchmark_options_schema

OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"]
# Keras 3's backends a run can use (`backend:`; `edgeprune run --backend`).
BACKENDS = ["tensorflow", "jax", "torch"]


def _section(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


_FACTORY = {"type": "string", "pattern": r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$",
            "description": "module:function or path/to/file.py:function"}
_SPARSITY = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
_PAIR = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2,
         "maxItems": 2}
_NAMES = {"type": "array", "items": {"type": "string"}}

# `ep.measure_latency_model` on a device_bench target, then `ep.plan_for_latency`.
_LATENCY_BUDGET = _section({
    "latency_ms": {"type": "number", "exclusiveMinimum": 0},
    "latency_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},  # of dense
    "target": {"type": "string", "default": "local"},  # its pattern: see `recipe_schema`
    "num_threads": {"type": "integer", "minimum": 1, "default": 1},
    "target_options": {"type": "object", "default": {}},
    # `ep.plan_for_latency`: plans measured on the target and corrected until within tolerance
    "tolerance": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                  "default": 0.05},
    "max_rounds": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
})

_SCHEDULE = _section({
    "kind": {"enum": ["polynomial_decay", "constant"], "default": "polynomial_decay"},
    "initial_sparsity": {**_SPARSITY, "default": 0.0},
    "final_sparsity": {**_SPARSITY, "default": 0.5},
    "begin": {"type": "integer", "minimum": 0, "default": 0},
    "end": {"type": "integer", "minimum": -1},
    "unit": {"enum": ["epochs", "steps"], "default": "epochs"},
    # (1 - progress) ** power: 0 or below never prunes, or prunes all at once
    "power": {"type": "number", "exclusiveMinimum": 0, "default": 3},
    "frequency": {"type": "integer", "minimum": 1, "default": 100},
})

# Keys a pruning group may override for the layers it matches.
_GROUP_SETTINGS = {
    "schedule": _SCHEDULE,
    "block_size": _PAIR,
    "sparsity_m_by_n": _PAIR,
    "scope": {"enum": ["layer", "global"]},
}

_TRAINING = _section({
    "epochs": {"type": "integer", "minimum": 0, "default": 0},
    "optimizer": {"enum": OPTIMIZERS, "default": "adam"},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.001},
    "loss": {"type": "string", "default": "sparse_categorical_crossentropy"},
    "from_logits": {"type": "boolean", "default": True},
})

# The run folder's default name (runs/<name>): one path component, no "..", no "/" or "\\".
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$"

SCHEMA = _section({
    "name": {"type": "string", "pattern": NAME_PATTERN,
             "description": "a name of letters, digits, '.', '_' and '-' (it names the run "
                            "folder, runs/<name>), not starting with '.'"},
    "description": {"type": "string"},
    "seed": {"type": "integer", "default": 0},
    # The run's Keras backend; left out: the one Keras picks (KERAS_BACKEND, keras.json).
    "backend": {"enum": BACKENDS},
    # Data parallel training on several JAX processes (`ep.start_data_parallel`): each process
    # runs the recipe with its own process_id (`--set distribution.process_id=1`); the first
    # writes the run folder. Not part of the fingerprint (each process has its own process_id).
    "distribution": _section({
        "coordinator": {"type": "string", "pattern": r"^[^:\s]+:[0-9]+$",
                        "description": "host:port of the first process"},
        "num_processes": {"type": "integer", "minimum": 1},
        "process_id": {"type": "integer", "minimum": 0, "default": 0},
    }, required=["coordinator", "num_processes"]),
    "model": {
        **_section({
            "keras_file": {"type": "string"},
            "application": _section({
                "name": {"type": "string"},
                "input_shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "classes": {"type": "integer", "minimum": 1},
                "args": {"type": "object"},
                "batchnorm_momentum": {"type": "number", "exclusiveMinimum": 0,
                                       "exclusiveMaximum": 1},
            }, required=["name", "input_shape", "classes"]),
            "factory": _FACTORY,
            "args": {"type": "object"},
        }),
        "oneOf": [{"required": ["keras_file"]}, {"required": ["application"]},
                  {"required": ["factory"]}],
    },
    "data": _section({
        "source": {"enum": ["digits", "npz", "factory"], "default": "digits"},
        "path": {"type": "string"},
        "factory": _FACTORY,
        "args": {"type": "object"},
        "batch_size": {"type": "integer", "minimum": 1, "default": 32},
    }),
    "training": _TRAINING,
    "pruning": _section({
        # enums from the library's registries: see `recipe_schema`
        "structure": {"enum": [], "default": "unstructured"},
        "criterion": {"enum": [], "default": "magnitude"},
        **_GROUP_SETTINGS,
        "schedule": {**_SCHEDULE, "default": {}},
        "scope": {"enum": ["layer", "global"], "default": "layer"},
        "policy": {"enum": ["xnnpack"]},
        "round_to": {"type": "integer", "minimum": 1, "default": 1},
        "min_channels": {"type": "integer", "minimum": 1, "default": 1},
        "skip_layers": _NAMES,
        "groups": {"type": "array", "items": _section(
            {"layers": {**_NAMES, "minItems": 1}, "skip": {"type": "boolean"},
             **_GROUP_SETTINGS}, required=["layers"])},
        "fine_tune": {**_TRAINING, "default": {"epochs": 2}},
        "allocation": _section({
            "method": {"enum": ["sensitivity", "uniform", "global_magnitude"],
                       "default": "sensitivity"},
            "target": {"type": "number", "exclusiveMinimum": 0},
            "budget": {"anyOf": [{"enum": ["sparsity", "params", "macs", "bytes"]},
                                 _LATENCY_BUDGET], "default": "sparsity"},
            "sparsities": {"type": "array", "items": _SPARSITY, "minItems": 1},
            "max_sparsity": _SPARSITY,
            "skip": _NAMES,
            "scan_samples": {"type": "integer", "minimum": 1, "default": 500},
        }),
        # `ep.iterative_magnitude_pruning` in place of one gradual run.
        "iterative": _section({
            "rounds": {"type": "integer", "minimum": 1},
            "final_sparsity": _SPARSITY,
            "rewind_step": {"type": ["integer", "null"], "minimum": 0, "default": None},
        }, required=["rounds"]),
    }),
    "strip": _section({"shrink": {"type": "boolean", "default": False}}),
    "quantize": _section({
        "mode": {"enum": [], "default": "none"},
        "int8_io": {"type": "boolean", "default": False},
        "sparse_storage": {"type": "boolean", "default": False},
        "calibration_samples": {"type": "integer", "minimum": 1, "default": 200},
        "aware_training": {**_TRAINING, "default": {}},
    }),
    "export": _section({
        "baseline_tflite": {"type": "boolean", "default": True},
        "c_array": {"type": "boolean", "default": False},
        "onnx": {"type": "boolean", "default": False},  # model.onnx, float32, checked
        "array_name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    }),
    "benchmark": _section({
        # device_bench's run settings and each target's own options, from its target registry.
        "targets": {"type": "array", "items": benchmark_options_schema()},
    }),
    "report": _section({
        "formats": {"type": "array", "items": {"enum": ["markdown", "html"]},
                    "default": ["markdown", "html"]},
        "title": {"type": "string"},
    }),
}, required=["model"])


def recipe_schema():
    """`SCHEMA` with its vocabularies read from the library's registries (granularities,
    channel criteria, quantization modes, device_bench targets), so whatever is registered when
    a recipe is checked is a valid recipe value, and none can drift."""
    from edgeprune.quantize.export import QUANTIZE_MODES
    from edgeprune.sparsity.granularity import granularity_names
    from edgeprune.structured.criteria import criterion_names

    pruning = SCHEMA["properties"]["pruning"]["properties"]
    pruning["structure"]["enum"] = granularity_names()
    # "magnitude" ranks single weights; the channel criteria rank channels.
    pruning["criterion"]["enum"] = ["magnitude", *criterion_names()]
    SCHEMA["properties"]["quantize"]["properties"]["mode"]["enum"] = [
        mode or "none" for mode in QUANTIZE_MODES]
    SCHEMA["properties"]["benchmark"]["properties"]["targets"]["items"] = \
        benchmark_options_schema()
    _LATENCY_BUDGET["properties"]["target"] = {
        **benchmark_options_schema()["properties"]["target"], "default": "local"}
    return SCHEMA


def add_section(name, section):
    """Allows the top-level recipe section `name` (a registered stage's own settings)."""
    SCHEMA["properties"][name] = section


def remove_section(name):
    SCHEMA["properties"].pop(name, None)


class RecipeError(ValueError):
    """A recipe that cannot run: the message names the file, the key path and what is allowed."""


# A JSON number is finite, and an integer is an int: jsonschema's own checker takes 3.0 for an
# integer (epochs: 3.0 then breaks `range`) and NaN for a number (NaN passes every bound).
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
    "integer": lambda checker, value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda checker, value: (isinstance(value, (int, float))
                                      and not isinstance(value, bool) and math.isfinite(value)),
})
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)
# Problems listed before "... and N more": a recipe with thousands of unknown keys is one screen.
MAX_PROBLEMS = 20


def check(document, source):
    """Raises `RecipeError` listing every schema violation of `document` (read from `source`);
    after MAX_PROBLEMS of them, the rest are counted."""
    if not isinstance(document, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping of sections "
                          f"({', '.join(SCHEMA['properties'])}), got {type(document).__name__}")
    validator = Validator(recipe_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if errors:
        problems, more = [], 0
        for error in errors:
            lines, left = _describe(error, MAX_PROBLEMS - len(problems))
            problems += lines
            more += left
        if more:
            problems.append(f"... and {more} more")
        raise RecipeError(f"{source}: invalid recipe\n  " + "\n  ".join(problems))


def key_path(parts):
    """`["pruning", "groups", 0, "layers"]` -> `pruning.groups[0].layers`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def did_you_mean(word, choices):
    """` (did you mean 'x'?)` when `word` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(error, limit):
    """(at most `limit` lines describing `error`, how many more it would have taken)."""
    if error.validator == "additionalProperties":
        path = list(error.absolute_path)
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed), key=str)
        return ([f"{key_path(path + [key])}: unknown key; allowed: {', '.join(allowed)}"
                 f"{did_you_mean(key, allowed)}" for key in unknown[:max(limit, 0)]],
                max(len(unknown) - max(limit, 0), 0))
    if limit <= 0:
        return [], 1
    return [_describe_one(error)], 0


def _describe_one(error):
    path = list(error.absolute_path)
    where = key_path(path)
    if error.validator == "enum":
        allowed = error.validator_value
        return (f"{where}: {_short(error.instance)} is not allowed; allowed: "
                f"{', '.join(map(str, allowed))}{did_you_mean(error.instance, allowed)}")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        if isinstance(error.instance, float) and not math.isfinite(error.instance):
            return f"{where}: expected a finite {expected}, got {error.instance}"
        return (f"{where}: expected {expected}, got "
                f"{type(error.instance).__name__} {_short(error.instance)}")
    bounds = {"minimum": "is below the minimum", "exclusiveMinimum": "must be above",
              "maximum": "is above the maximum", "exclusiveMaximum": "must be below"}
    if error.validator in bounds:
        return f"{where}: {_short(error.instance)} {bounds[error.validator]} " \
               f"{error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "oneOf" and path == ["model"]:
        return "model: give exactly one of keras_file, application, factory"
    if error.validator == "pattern":
        hint = error.schema.get("description", f"a string matching {error.validator_value}")
        return f"{where}: {_short(error.instance)} is not {hint}"
    return f"{where}: {_cut(error.message, 300)}"


def _short(value):
    """repr(value), cut to 80 characters: a 100 kB string stays one line."""
    return _cut(repr(value), 80)


def _cut(text, limit):
    return text if len(text) <= limit else text[:limit - 4] + " ..."
