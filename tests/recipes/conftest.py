"""Helpers for the recipe and CLI tests: recipe files in a temporary folder, fast overrides."""

import os
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = os.path.join(REPO, "recipes")
QUICKSTART = os.path.join(RECIPES, "quickstart.yaml")

LOTTERY_TICKET = os.path.join(RECIPES, "lottery_ticket.yaml")

SHORT_BENCHMARK = ("benchmark.targets=[{target: local, num_runs: 20, min_secs: 0.05, "
                   "warmup_runs: 2, warmup_min_secs: 0.05}]")
# The quickstart with fewer epochs and a short benchmark: the whole flow in well under a minute.
FAST = ["training.epochs=3", "pruning.fine_tune.epochs=2", "pruning.schedule.end=1",
        SHORT_BENCHMARK]


@pytest.fixture
def write_recipe(tmp_path):
    """Writes YAML text (dedented) to a file in tmp_path and returns its path."""
    def write(text, name="recipe.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write
