"""Recipes: a YAML file names every stage of the flow; `run_recipe` executes it into a folder.

>>> from edgeprune.recipe import load_recipe, run_recipe
>>> state = run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")  # doctest: +SKIP

Names are imported on first use (PEP 562), so `edgeprune --help` and the stage registry do not
load TensorFlow.
"""

_EXPORTS = {
    "edgeprune.recipe.loader": ("Recipe", "load_recipe"),
    "edgeprune.recipe.modelstats": ("format_stats", "model_stats"),
    "edgeprune.recipe.report": ("write_report",),
    "edgeprune.recipe.runner": ("StageFailed", "run_recipe"),
    "edgeprune.recipe.schema": ("RecipeError", "recipe_schema"),
    "edgeprune.recipe.stages": ("Stage", "enabled_stages", "register_stage"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'edgeprune.recipe' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
