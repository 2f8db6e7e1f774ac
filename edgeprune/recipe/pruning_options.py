"""From a recipe's `pruning` settings to `prune_low_magnitude`'s options, checked by the
granularity that takes them, so the recipe and the library cannot disagree on what is valid."""

from edgeprune.recipe.schema import SCHEMA
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.structured.criteria import criterion_names

# Recipe keys of a `pruning` section (or group) and the `prune_low_magnitude` options they set.
RECIPE_OPTIONS = {"scope": "pruning_scope", "block_size": "block_size",
                  "sparsity_m_by_n": "sparsity_m_by_n", "criterion": "criterion",
                  "round_to": "round_to", "min_channels": "min_channels"}
# The recipe's name for ranking single weights, where the library takes no criterion at all.
MAGNITUDE = "magnitude"


def given_options(settings):
    """`{recipe key: value}` of the options `settings` sets to something else than the schema's
    default (the loader fills defaults in; only a changed value asks for the option)."""
    defaults = SCHEMA["properties"]["pruning"]["properties"]
    return {key: settings[key] for key in RECIPE_OPTIONS if key in settings
            and settings[key] != defaults.get(key, {}).get("default")}


def library_options(settings, leave_out=()):
    """`prune_low_magnitude` keyword arguments for pruning `settings` (recipe keys in
    `leave_out` left out): the structure and the options it sets (lists as tuples); raises
    ValueError as the granularity does."""
    granularity = get_granularity(settings["structure"])
    given = given_options(settings)
    if settings["criterion"] != MAGNITUDE:
        given["criterion"] = settings["criterion"]
    options = {RECIPE_OPTIONS[key]: tuple(value) if isinstance(value, list) else value
               for key, value in given.items() if key not in leave_out}
    granularity.check_options(options)
    return {"structure": settings["structure"], **options}


def option_problems(where, settings):
    """What is wrong with the options of pruning `settings` (at key path `where`), one line
    each, naming the recipe key."""
    granularity = get_granularity(settings["structure"])
    problems, reported = [], []
    ranks_channels = "criterion" in granularity.options
    if ranks_channels and settings["criterion"] == MAGNITUDE:
        names = criterion_names()
        problems.append(f"{where}.criterion: structure: {settings['structure']} ranks by one of "
                        f"{', '.join(names[:-1])} or {names[-1]}")
    elif not ranks_channels and settings["criterion"] != MAGNITUDE:
        problems.append(f"{where}.criterion: {settings['criterion']!r} ranks channels; "
                        f"structure: {settings['structure']} uses {MAGNITUDE!r}")
        reported.append("criterion")
    for key in given_options(settings):
        if key != "criterion" and RECIPE_OPTIONS[key] not in granularity.options:
            problems.append(f"{where}.{key}: does not apply to structure: {settings['structure']}")
            reported.append(key)
    try:
        library_options(settings, leave_out=reported)
    except ValueError as error:
        problems.append(f"{where}: {error}")
    return problems
