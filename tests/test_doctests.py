"""The examples in edgeprune's docstrings run and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

import edgeprune


def modules_with_examples():
    """Modules with at least one example that runs (not marked `+SKIP`)."""
    names = sorted(m.name for m in pkgutil.walk_packages(edgeprune.__path__, "edgeprune."))
    return [name for name in names
            if any(not example.options.get(doctest.SKIP)
                   for test in doctest.DocTestFinder().find(importlib.import_module(name))
                   for example in test.examples)]


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples(name):
    outcome = doctest.testmod(importlib.import_module(name), extraglobs={"ep": edgeprune})
    assert outcome.attempted > 0 and outcome.failed == 0
