"""The `baseline` stage: the model source, trained densely when `training.epochs` > 0."""

import keras

from edgeprune.recipe import training
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_baseline(ctx):
    """Loads the model source, trains it densely when asked, and saves `baseline.keras`."""
    settings = ctx.recipe["training"]
    keras.utils.set_random_seed(ctx.recipe["seed"])
    if settings["epochs"]:
        model = ctx.train("baseline", lambda: training.compile_for(ctx.source_model(), settings),
                          settings["epochs"])
    else:
        model = ctx.source_model()
    return ctx.keras_result("baseline", model, "baseline.keras", "baseline (Keras, dense)")


register_stage(Stage("baseline", run_baseline))
