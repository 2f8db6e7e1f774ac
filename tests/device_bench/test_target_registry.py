"""One target registry feeds --target, benchmark(), the CLI flags and the recipe schema; a user's
own target, registered from their code, works everywhere a built-in one does."""

import inspect
import json
import re

import pytest

import device_bench
from device_bench import cli, settings
from device_bench.errors import BenchError
from device_bench.targets import registry
from device_bench.targets.local import LocalTarget

FAST = ["--num_runs=10", "--min_secs=0", "--warmup_min_secs=0"]


class EchoTarget:
    """A user's target: measures on this machine and says which bench it stands for."""

    def __init__(self, name, greeting="hello"):
        self.name, self.greeting = name, greeting

    def run(self, graphs, run_settings):
        result = LocalTarget().run(graphs, run_settings)
        result.target = f"echo://{self.name}"
        result.runtime["greeting"] = self.greeting
        return result


@pytest.fixture
def echo_target(monkeypatch):
    """Registers echo://NAME in a copy of the registry, so other tests see the built-ins only."""
    monkeypatch.setattr(registry, "_TARGETS", dict(registry._TARGETS))
    return device_bench.register_target(
        "echo", EchoTarget, "this machine, labelled as another bench", address="NAME",
        address_help="any label",
        options=[device_bench.TargetOption("greeting", default="hello", flag="echo_greeting",
                                           help="put into the result's runtime")])


def test_registered_target_runs_through_benchmark(models, fast_settings, echo_target):
    result = device_bench.benchmark([models["float"], models["int8"]], target="echo://bench7",
                                    greeting="hi", **fast_settings)
    assert result.target == "echo://bench7" and result.runtime["greeting"] == "hi"
    assert all(m.latency.count >= 20 for m in result.models)
    assert result.comparisons[0].graph == models["int8"]
    with pytest.raises(BenchError, match="board do not apply to the echo target; it accepts: "
                                         "greeting"):
        device_bench.benchmark(models["float"], target="echo://bench7", board="pico")


def test_registered_target_runs_through_the_cli(models, tmp_path, capsys, echo_target):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "echo target: --echo_greeting ECHO_GREETING put into the result's runtime " \
           "(default hello)" in help_text
    assert "echo://NAME (any label): this machine, labelled as another bench" in help_text
    out = tmp_path / "r.json"
    assert cli.main([f"--graph={models['float']}", "--target=echo://ci", "--echo_greeting=hey",
                     *FAST, f"--output_json={out}"]) == 0
    data = json.loads(out.read_text())
    assert data["target"] == "echo://ci" and data["runtime"]["greeting"] == "hey"
    assert data["models"][0]["latency"]["count"] == 10


def test_registering_checks_scheme_and_shared_flags(echo_target):
    with pytest.raises(ValueError, match="already registered"):
        device_bench.register_target("echo", EchoTarget, "again")
    with pytest.raises(ValueError, match="lower-case"):
        device_bench.register_target("My-Bench", EchoTarget, "bad scheme")
    # --timeout is a float seconds option of ssh and serial; one flag cannot mean two things.
    with pytest.raises(ValueError, match="--timeout of the slow target sets timeout \\(int\\)"):
        device_bench.register_target("slow", EchoTarget, "x", options=[
            device_bench.TargetOption("timeout", int)])
    with pytest.raises(BenchError, match="use local, .*echo://NAME \\(any label\\)"):
        device_bench.make_target("echo://")


def test_every_target_is_in_the_help_the_error_and_the_recipe_schema():
    from edgeprune.recipe.schema import SCHEMA, RecipeError, check

    entry = SCHEMA["properties"]["benchmark"]["properties"]["targets"]["items"]
    pattern = entry["properties"]["target"]["pattern"]
    flags = cli.build_parser().format_help()
    with pytest.raises(BenchError) as error:
        registry.parse_target("nowhere")
    for target in registry.targets():
        example = f"{target.scheme}://somewhere" if target.address else target.scheme
        assert re.fullmatch(pattern, example), target.scheme
        assert target.usage in cli.target_help() and target.usage in str(error.value)
        assert registry.parse_target(example) == (target.scheme,
                                                  "somewhere" if target.address else "")
        values = {bool: False, int: 1, float: 1.5, str: "x"}
        recipe_entry = {"target": example, "num_runs": 5,
                        **{o.name: values[o.type] for o in target.options}}
        check({"model": {"factory": "m.py:f"}, "benchmark": {"targets": [recipe_entry]}}, "r")
        for option in target.options:
            assert f"--{option.flag_name}" in flags
    with pytest.raises(RecipeError, match=r"targets\[0\]\.board: unknown key"):
        check({"model": {"factory": "m.py:f"},
               "benchmark": {"targets": [{"target": "local", "board": "pico"}]}}, "r")


def test_builtin_options_match_the_target_classes():
    for target in registry.targets():
        parameters = list(inspect.signature(target.load_class()).parameters.values())
        if target.address:
            parameters = parameters[1:]
        assert {p.name: p.default for p in parameters} == {
            o.name: o.default for o in target.options}, target.scheme


def test_run_settings_and_their_schema_agree():
    assert list(settings.SETTING_SCHEMAS) == [
        field.name for field in settings.dataclasses.fields(settings.RunSettings)]


def test_flags_set_the_options_they_name():
    args = cli.build_parser().parse_args([
        "--graph=m.tflite", "--ssh_key=k", "--ssh_known_hosts=kh", "--ssh_no_host_key_check",
        "--taskset=f0", "--timeout=5", "--baudrate=9600", "--board=pico"])
    options = cli.options_from_args(args)
    assert {k: v for k, v in options.items() if k not in device_bench.api.SETTING_NAMES} == {
        "key_filename": "k", "known_hosts": "kh", "check_host_key": False, "taskset_mask": "f0",
        "timeout": 5.0, "baudrate": 9600, "board": "pico"}
