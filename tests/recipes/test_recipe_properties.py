"""Property-based tests of recipe validation (issue 14, items 5 and 6), with hypothesis.

1. A valid recipe, mutated (a value of the wrong type, NaN or infinity, an unknown key, nesting
   past the limit, an alias bomb, an alias cycle), is refused with a RecipeError that names the
   key path, never another exception, within a bounded time and memory.
2. Every recipe `validate` accepts (load_recipe, then the preflight `edgeprune validate` runs) is
   one `run` accepts: `run --until baseline` (training.epochs 0: the run's own preflight against
   the real data and model, then the baseline stage) and the prune stage's translation of the
   settings on the saved baseline (`apply_pruning`, `compile_for`) raise nothing.

Derandomized (the same examples every run, no example database) and sized to take well under a
minute on two cores.
"""

import math
import os
import time
import tracemalloc

import hypothesis  # the `test` extra installs it
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprune.recipe import RecipeError, load_recipe, preflight, run_recipe
from edgeprune.recipe.schema import key_path

FACTORY = '''\
import keras


def tiny(filters=4):
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, 3, name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(10, name="head")])
'''

BASE = {
    "name": "prop",
    "model": {"factory": "models.py:tiny", "args": {"filters": 4}},
    "data": {"source": "digits", "batch_size": 32},
    "training": {"epochs": 0, "optimizer": "adam", "learning_rate": 0.001},
    "pruning": {"structure": "unstructured", "scope": "layer",
                "schedule": {"kind": "polynomial_decay", "final_sparsity": 0.5, "power": 3,
                             "frequency": 10, "begin": 0},
                "fine_tune": {"epochs": 1, "learning_rate": 0.001}},
    "quantize": {"mode": "int8", "int8_io": True, "calibration_samples": 20},
    "export": {"baseline_tflite": False, "c_array": False},
    "report": {"formats": ["markdown"]},
}

# Leaves of BASE and what the schema allows there.
LEAVES = {
    ("name",): "name",
    ("training", "epochs"): "integer", ("training", "learning_rate"): "number",
    ("training", "optimizer"): ("adam", "adamw", "sgd", "rmsprop"),
    ("data", "batch_size"): "integer", ("data", "source"): ("digits", "npz", "factory"),
    ("pruning", "scope"): ("layer", "global"),
    ("pruning", "schedule", "kind"): ("polynomial_decay", "constant"),
    ("pruning", "schedule", "final_sparsity"): "number", ("pruning", "schedule", "power"): "number",
    ("pruning", "schedule", "frequency"): "integer", ("pruning", "schedule", "begin"): "integer",
    ("pruning", "fine_tune", "epochs"): "integer",
    ("pruning", "fine_tune", "learning_rate"): "number",
    ("quantize", "mode"): ("none", "dynamic", "float16", "int8", "int16x8"),
    ("quantize", "int8_io"): "boolean", ("quantize", "calibration_samples"): "integer",
    ("export", "c_array"): "boolean", ("report", "formats"): "formats",
}
NUMBERS = [path for path, kind in LEAVES.items() if kind in ("number", "integer")]
SECTIONS = [(), ("model",), ("data",), ("training",), ("pruning",), ("pruning", "schedule"),
            ("pruning", "fine_tune"), ("quantize",), ("export",), ("report",)]
FREE_FORM = [("model", "args"), ("data",)]  # where deep values and aliases go (data.args)

small_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                     max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), small_text)
containers = st.one_of(st.lists(scalars, max_size=3),
                       st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), scalars,
                                       max_size=3))


def wrong_values(kind):
    """Values the schema refuses at a leaf of `kind`."""
    if kind == "integer":
        return st.one_of(st.floats(0.1, 99.9).filter(lambda v: v != int(v)), small_text,
                         st.booleans(), containers)
    if kind == "number":
        return st.one_of(small_text, st.booleans(), st.none(), containers)
    if kind == "boolean":
        return st.one_of(st.integers(-3, 3), small_text, st.none(), containers)
    if kind == "name":
        return st.one_of(small_text.map(lambda t: "../" + t), small_text.map(lambda t: "/" + t),
                         st.integers(), containers)
    if kind == "formats":
        return st.one_of(small_text, st.integers(), st.lists(small_text.filter(
            lambda t: t not in ("markdown", "html")), min_size=1, max_size=2))
    return st.one_of(small_text.filter(lambda t: t not in kind), st.integers(), containers)


def setting(document, path, value):
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def malformed(draw):
    """(what was done, YAML text, the key path its error must name)."""
    document = yaml.safe_load(yaml.safe_dump(BASE))  # a deep copy
    how = draw(st.sampled_from(["wrong type", "not finite", "unknown key", "deep", "alias bomb",
                                "alias cycle"]))
    if how == "wrong type":
        path = draw(st.sampled_from(sorted(LEAVES)))
        setting(document, path, draw(wrong_values(LEAVES[path])))
        return how, yaml.safe_dump(document), key_path(list(path))
    if how == "not finite":
        path = draw(st.sampled_from(NUMBERS))
        setting(document, path, draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        return how, yaml.safe_dump(document), key_path(list(path))
    if how == "unknown key":
        path = draw(st.sampled_from(SECTIONS))
        node = document
        for part in path:
            node = node[part]
        key = draw(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
            lambda k: k not in node and k not in _allowed(path)))
        node[key] = draw(scalars)
        return how, yaml.safe_dump(document), key_path([*path, key])
    path = draw(st.sampled_from(FREE_FORM))
    depth = draw(st.integers(33, 400))
    levels = draw(st.integers(5, 9))
    value = {"deep": "{x: " + "[" * depth + "]" * depth + "}",
             "alias bomb": "{a0: &a0 [x, x, x, x, x, x, x, x, x], " + ", ".join(
                 f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels))
             + "}",
             "alias cycle": "&loop {a: [*loop]}"}[how]
    setting(document, path + ("args",) if path == ("data",) else path, "PLACEHOLDER")
    if path == ("data",):
        document["data"]["source"] = "factory"
        document["data"]["factory"] = "models.py:tiny"
        path = ("data", "args")
    return how, yaml.safe_dump(document).replace("PLACEHOLDER", value), key_path(list(path))


def _allowed(path):
    from edgeprune.recipe.schema import recipe_schema

    schema = recipe_schema()
    for part in path:
        schema = schema["properties"][part]
    return set(schema.get("properties", {}))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("properties")
    (path / "models.py").write_text(FACTORY)
    return path


@settings(max_examples=60, deadline=10_000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=malformed())
def test_item5_6_malformed_recipes_are_refused_naming_the_key_path(folder, case):
    how, text, where = case
    hypothesis.event(how)
    path = folder / "malformed.yaml"
    path.write_text(text)
    began = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(RecipeError) as info:  # any other exception fails the test
            preflight.check(load_recipe(str(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert time.perf_counter() - began < 5 and peak < 100e6, (time.perf_counter() - began, peak)
    assert message.startswith(str(path)) and where in message, (where, message)


def mostly(common, *rare):
    """`common` three times in four, else one of `rare`."""
    return st.integers(0, 2 + len(rare)).map(lambda i: common if i < 3 else rare[i - 3])


@st.composite
def plausible(draw):
    """A recipe of choices each valid on its own (most of them the usual one); together they
    may not be, which is what validate must tell."""
    structure = draw(st.sampled_from(["unstructured", "channels"]))
    schedule = {"kind": draw(st.sampled_from(["polynomial_decay", "constant"])),
                "final_sparsity": draw(st.sampled_from([0.3, 0.5, 0.9])),
                "frequency": draw(mostly(5, 1, 40, 500)), "begin": draw(mostly(0, 1)),
                "unit": draw(mostly("epochs", "steps"))}
    if draw(mostly(False, True)):
        schedule["end"] = draw(st.sampled_from([1, 2, 30]))
    pruning = {"structure": structure, "schedule": schedule,
               "criterion": draw(mostly("magnitude" if structure == "unstructured" else "l1",
                                        "l1", "l2", "magnitude")),
               "fine_tune": {"epochs": draw(mostly(1, 0, 2))}}
    for key, choices in (("block_size", [[1, 4], [2, 2]]), ("sparsity_m_by_n", [[2, 4]]),
                         ("scope", ["global"]), ("skip_layers", [["conv"], ["head"], ["nope"]]),
                         ("groups", [[{"layers": ["conv*"], "skip": True}],
                                     [{"layers": ["zz*"]}]])):
        if draw(st.integers(0, 4)) == 4:  # hypothesis favours 0: options stay rarer
            pruning[key] = draw(st.sampled_from(choices))
    recipe = {"name": "prop", "model": {"factory": "models.py:tiny",
                                        "args": {"filters": draw(st.integers(2, 6))}},
              "training": {"epochs": 0}, "pruning": pruning,
              "quantize": {"mode": draw(st.sampled_from(["none", "dynamic", "float16", "int8",
                                                         "int16x8"])),
                           "int8_io": draw(mostly(False, True)),
                           "sparse_storage": draw(mostly(False, True))},
              "export": {"c_array": draw(mostly(False, True)), "baseline_tflite": False},
              "report": {"formats": ["markdown"]}}
    if draw(mostly(False, True)):
        recipe["benchmark"] = {"targets": [
            {"target": "micro", "board": draw(st.sampled_from(["nano33ble", "pico", "nope"]))}]}
    return yaml.safe_dump(recipe)


@settings(max_examples=30, deadline=60_000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=plausible())
def test_item6_every_recipe_validate_accepts_run_accepts(folder, text):
    import keras

    from edgeprune.recipe import training
    from edgeprune.recipe.stages import prune

    path = folder / "plausible.yaml"
    path.write_text(text)
    try:
        recipe = load_recipe(str(path))
        preflight.check(recipe)  # what `edgeprune validate` runs
    except RecipeError as error:
        assert str(path) in str(error)
        hypothesis.event("refused by validate")
        return  # refused up front: nothing to run
    hypothesis.event("accepted by validate, then run")
    out = folder / f"run-{abs(hash(text))}"
    state = run_recipe(recipe, out, until="baseline")  # raises if run refuses it
    assert list(state["finished"]) == ["baseline"]
    pruning = recipe.get("pruning")
    if pruning:
        baseline = keras.models.load_model(out / "baseline.keras")
        steps = preflight.steps_per_epoch(recipe)
        training.compile_for(prune.apply_pruning(baseline, pruning, steps,
                                                 pruning["fine_tune"]["epochs"]),
                             pruning["fine_tune"])
    keras.backend.clear_session()
    assert os.path.exists(out / "state.json")
