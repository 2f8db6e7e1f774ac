"""The recipe's benchmark targets run at once (a device_bench fleet): validate refuses what the
benchmark stage would refuse after training."""

import pytest

from edgeprune.recipe import RecipeError, load_recipe

from .conftest import QUICKSTART


def test_a_target_listed_twice_is_refused_when_the_recipe_is_loaded():
    targets = "benchmark.targets=[{target: local}, {target: micro}, {target: local, num_runs: 5}]"
    with pytest.raises(RecipeError, match=r"benchmark.targets\[2\]: local is already "
                                          r"benchmark.targets\[0\]; list each target once"):
        load_recipe(QUICKSTART, [targets])
