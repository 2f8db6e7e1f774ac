"""The examples in device_bench's docstrings run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["api", "boards", "benchmark_model_output", "errors", "flatbuffer", "flatbuffer_reader",
           "fleet", "fleet_file", "modelfile", "plot", "report", "schema", "serial_protocol",
           "settings", "stats", "targets", "targets.adb", "targets.micro", "targets.registry",
           "targets.serial", "targets.ssh", "yamlfile"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"device_bench.{name}")
    outcome = doctest.testmod(module)
    assert outcome.attempted > 0 and outcome.failed == 0
