"""Recipes: a YAML file names every stage of the flow; `run_recipe` executes it into a folder.

>>> from edgeprune.recipe import load_recipe, run_recipe
>>> state = run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")  # doctest: +SKIP
"""

from edgeprune.recipe.loader import Recipe, load_recipe
from edgeprune.recipe.modelstats import format_stats, model_stats
from edgeprune.recipe.report import write_report
from edgeprune.recipe.runner import StageFailed, run_recipe
from edgeprune.recipe.schema import RecipeError, recipe_schema
from edgeprune.recipe.stages import Stage, enabled_stages, register_stage
