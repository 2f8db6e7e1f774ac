"""Recipes: a YAML file names every stage of the flow; `run_recipe` executes it into a folder.

>>> from edgeprune.recipe import load_recipe, run_recipe
>>> state = run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")  # doctest: +SKIP

Names are imported on first use (PEP 562), so `edgeprune --help` and the stage registry do not
load TensorFlow.
"""

from edgeprune.lazy import lazy_api

_EXPORTS = {
    "edgeprune.recipe.loader": ("Recipe", "load_recipe"),
    "edgeprune.recipe.modelstats": ("format_stats", "model_stats"),
    "edgeprune.recipe.report": ("write_report",),
    "edgeprune.recipe.runner": ("StageFailed", "run_recipe"),
    "edgeprune.recipe.schema": ("RecipeError", "recipe_schema"),
    "edgeprune.recipe.stages": ("Stage", "enabled_stages", "register_stage"),
}
__all__ = lazy_api(globals(), _EXPORTS)
