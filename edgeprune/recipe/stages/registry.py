"""The stage registry: the order of a run, and what each stage needs from the recipe.

A stage is a function of the run context returning `{"outputs": {name: file}, "artifacts":
[rows], ...}` (files relative to the run folder, written atomically). The runner knows no stage by
name: it runs the registered stages that a recipe enables, in order. A stage with its own recipe
section registers the section's JSON schema with it, so `edgeprune validate` checks it too:

>>> def count_layers(ctx):
...     return {"outputs": {}, "layers": len(ctx.load(ctx.latest_model()).layers)}
>>> register_stage(Stage("doc_count", count_layers, lambda recipe: "doc_count" in recipe,
...                      section={"type": "object"}), after="convert")
>>> "doc_count" in stage_names()
True
>>> unregister_stage("doc_count")
"""

import dataclasses

_STAGES = []


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a run.

    Args:
        name: the stage's name (`--until`, `state.json`, `stages.log`).
        run: `f(context) -> result dict` (see `edgeprune.recipe.runner.RunContext`).
        enabled: `f(recipe dict) -> bool`: whether a recipe runs this stage.
        scratch: folders in the run folder that the stage keeps between tries (to resume), and
            that are discarded when a stage before it runs again.
        section: the JSON schema of the stage's own top-level recipe section, if it has one.
    """

    name: str
    run: callable
    enabled: callable = lambda recipe: True
    scratch: tuple = ()
    section: dict = None


def register_stage(stage, after=None):
    """Adds `stage` to every run, after the stage named `after` (default: last). Registering a
    name again replaces that stage in place."""
    names = stage_names()
    if stage.name in names:
        _STAGES[names.index(stage.name)] = stage
    elif after is None:
        _STAGES.append(stage)
    elif after not in names:
        raise ValueError(f"register_stage: no stage {after!r}; stages: {', '.join(names)}.")
    else:
        _STAGES.insert(names.index(after) + 1, stage)
    if stage.section is not None:
        from edgeprune.recipe.schema import add_section

        add_section(stage.name, stage.section)


def unregister_stage(name):
    """Removes the stage `name` (and its recipe section) from every run."""
    from edgeprune.recipe.schema import remove_section

    _STAGES[:] = [stage for stage in _STAGES if stage.name != name]
    remove_section(name)


def stage_names():
    return [stage.name for stage in _STAGES]


def enabled_stages(recipe):
    """The stages `recipe` runs, in order."""
    return [stage for stage in _STAGES if stage.enabled(recipe)]
