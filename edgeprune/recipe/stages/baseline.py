"""The `baseline` stage: the model source, trained densely when `training.epochs` > 0."""

from edgeprune.recipe.environment import environment
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_baseline(ctx):
    """Loads the model source, trains it densely when asked, and saves `baseline.keras`."""
    import keras

    from edgeprune.recipe import training

    settings = ctx.recipe["training"]
    keras.utils.set_random_seed(ctx.recipe["seed"])
    if settings["epochs"]:
        model = ctx.train("baseline", lambda: training.compile_for(ctx.source_model(), settings),
                          settings["epochs"])
    else:
        model = ctx.source_model()
    result = ctx.keras_result("baseline", model, "baseline.keras", "baseline (Keras, dense)")
    # For the report: when, with what, on which machine, and on how many samples.
    data = ctx.data
    result["environment"] = {**environment(), "test_samples": len(data.test_y),
                             "train_samples": len(data.train[0]) if data.is_arrays else None}
    return result


register_stage(Stage("baseline", run_baseline))
