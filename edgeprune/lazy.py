"""Public names imported on first use (PEP 562's module `__getattr__`): how `edgeprune` and
`edgeprune.recipe` keep their import instant (no TensorFlow until a name that needs it)."""

import importlib


def lazy_api(namespace, exports, all_at_once=False):
    """Makes the package whose globals are `namespace` import `exports` (`{module: names}`) on
    first use; returns the names, for `__all__`.

    With `all_at_once`, the first name used imports every module, so that whatever they register
    (granularities, criteria) is complete whichever name comes first.
    """
    module_of = {name: module for module, names in exports.items() for name in names}
    package = namespace["__name__"]

    def __getattr__(name):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module_name in exports if all_at_once else [module_of[name]]:
            module = importlib.import_module(module_name)
            namespace.update((each, getattr(module, each)) for each in exports[module_name])
        return namespace[name]

    def __dir__():
        return sorted({*namespace, *module_of})

    namespace.update(__getattr__=__getattr__, __dir__=__dir__)
    return list(module_of)
