"""The local target on the real LiteRT interpreter."""

import numpy as np
import pytest

import device_bench
from device_bench.schema import BenchmarkResult


def test_float_model_latency_and_fields(models, fast_settings):
    result = device_bench.benchmark(models["float"], **fast_settings)
    model = result.models[0]
    lat = model.latency
    assert lat.count >= 20
    assert 0 < lat.min_us <= lat.p50_us <= lat.p90_us <= lat.p99_us <= lat.max_us
    assert lat.cv == pytest.approx(lat.std_us / lat.mean_us)
    assert model.init_us > 0 and model.first_inference_us > 0
    assert model.size_bytes == len(open(models["float"], "rb").read())
    assert model.memory_delta_bytes is not None
    assert model.inputs == [{"name": model.inputs[0]["name"], "dtype": "float32", "shape": [1, 8]}]
    assert result.runtime["litert_version"] == "2.3.0"


@pytest.mark.parametrize("name, dtype", [("int8", "int8"), ("uint8", "uint8")])
def test_quantized_inputs_get_their_dtype(models, fast_settings, name, dtype):
    result = device_bench.benchmark(models[name], **fast_settings)
    assert result.models[0].inputs[0]["dtype"] == dtype


def test_two_input_model(models, fast_settings):
    inputs = device_bench.benchmark(models["two_inputs"], **fast_settings).models[0].inputs
    assert sorted(i["shape"][1] for i in inputs) == [4, 6]


def test_dynamic_model_runs_with_default_and_given_shape(models, fast_settings):
    default = device_bench.benchmark(models["dynamic"], **fast_settings).models[0]
    assert default.inputs[0]["shape"] == [1, 1, 5]
    name = default.inputs[0]["name"]
    given = device_bench.benchmark(models["dynamic"], input_shapes={name: [2, 7, 5]},
                                   **fast_settings).models[0]
    assert given.inputs[0]["shape"] == [2, 7, 5]


def test_bad_input_shapes_are_explained(models):
    with pytest.raises(device_bench.BenchError, match="no input named nope; its inputs are"):
        device_bench.benchmark(models["float"], input_shapes={"nope": [1, 8]})
    name = device_bench.benchmark(models["float"], num_runs=1, min_secs=0).models[0].inputs[0]
    with pytest.raises(device_bench.BenchError, match="cannot take shape \\[1, 9\\]"):
        device_bench.benchmark(models["float"], input_shapes={name["name"]: [1, 9]})


def test_num_runs_and_min_secs_are_both_honoured(models):
    result = device_bench.benchmark(models["float"], num_runs=7, min_secs=0.0, warmup_runs=3,
                                    warmup_min_secs=0.0)
    assert result.models[0].latency.count == 7
    assert result.models[0].warmup_count == 3
    slow = device_bench.benchmark(models["float"], num_runs=1, min_secs=0.3, warmup_min_secs=0.0)
    assert slow.models[0].latency.count > 1


def test_max_secs_still_leaves_one_timed_run(models):
    result = device_bench.benchmark(models["float"], max_secs=1e-6, num_runs=1000)
    assert result.models[0].latency.count == 1


def test_without_xnnpack(models, fast_settings):
    result = device_bench.benchmark(models["float"], use_xnnpack=False, num_threads=1,
                                    **fast_settings)
    assert result.settings["use_xnnpack"] is False
    assert result.models[0].latency.count >= 20


def test_interleaved_comparison_pairs_every_run(models, fast_settings):
    result = device_bench.benchmark([models["float"], models["float_twin"], models["int8"]],
                                    **fast_settings)
    assert [c.graph for c in result.comparisons] == [models["float_twin"], models["int8"]]
    counts = {m.latency.count for m in result.models}
    assert len(counts) == 1  # interleaved: every model ran in every round
    ratio = result.comparisons[0].ratio
    assert ratio.pairs == counts.pop()
    assert ratio.p5 <= ratio.median <= ratio.p95


def test_result_round_trips_through_dict(models, fast_settings):
    result = device_bench.benchmark([models["float"], models["int8"]], **fast_settings)
    again = BenchmarkResult.from_dict(result.to_dict())
    assert again == result


def test_result_of_other_schema_version_is_refused():
    with pytest.raises(ValueError, match="schema version 99"):
        BenchmarkResult.from_dict({"schema_version": 99})


def test_random_inputs_cover_dtypes():
    from device_bench.runner import random_inputs

    details = [{"dtype": np.float32, "shape": [2, 3]}, {"dtype": np.int8, "shape": [4]},
               {"dtype": np.uint8, "shape": [4]}, {"dtype": np.int32, "shape": [3]},
               {"dtype": np.bool_, "shape": [2]}]
    arrays = random_inputs(details, np, np.random.default_rng(0))
    assert [a.dtype for a in arrays] == [np.float32, np.int8, np.uint8, np.int32, np.bool_]
    assert [a.shape for a in arrays] == [(2, 3), (4,), (4,), (3,), (2,)]
    assert -1 <= arrays[0].min() and arrays[0].max() < 1
