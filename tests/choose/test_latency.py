"""Latency models measured on a real LiteRT interpreter (local target, and one over SSH), and
allocation under a latency budget."""

import sys

import keras
import numpy as np
import pytest

import edgeprune as ep
from edgeprune.choose.latency import Axis, LatencyModel, LayerLatency
from tests.device_bench.conftest import sshd  # noqa: F401  (the real SSH server fixture)


def tiny_model():
    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="stem")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = keras.layers.Conv2D(48, 1, activation="relu", name="point")(y)
    y = keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(y))
    return keras.Model(x, y)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    model = tiny_model()
    cache = tmp_path_factory.mktemp("latency_cache")
    dense = ep.export_tflite(model)
    latency = ep.measure_latency_model(model, dense_tflite=dense, fractions=(0.5,),
                                       cache_dir=str(cache), num_runs=5, progress=False)
    return model, latency, cache, dense


def test_measures_each_layer_and_calibrates_to_the_dense_model(measured):
    model, latency, _, _ = measured
    assert [layer.name for layer in latency.layers] == ["stem", "dw", "point", "head"]
    assert latency.sizes == {"stem": 32, "point": 48}
    assert latency.measured_probes > 0 and latency.cached_probes == 0
    point = latency.layers[2]
    assert point.input.groups == {"stem": 32} and point.output.groups == {"point": 48}
    for axis in (point.input, point.output):  # measured at half and full width, on its step
        assert [w for w, _ in axis.curve][-1] == axis.width
        assert all(w % axis.step == 0 for w, _ in axis.curve)
    # Calibration makes the dense prediction the measured dense model.
    assert latency.predict_ms({}) == pytest.approx(latency.dense_measured_ms)
    assert latency.predict_ms({"stem": 0.5, "point": 0.5}) < latency.predict_ms({})
    assert set(latency.round_to.values()) <= {1, 4, 8, 16, 32}
    # A group keeps a choice of at least two counts, whatever its layers' step.
    assert all(2 * latency.round_to[g] <= size for g, size in latency.sizes.items())
    again = ep.LatencyModel.from_dict(latency.to_dict())
    assert again.predict_ms({"stem": 0.5}) == latency.predict_ms({"stem": 0.5})


def test_steps_from_tiles_up_to_32_channels():
    from edgeprune.choose.latency_steps import step_of

    removed = (0, 3, 7, 15, 31, 32)
    for tile in (4, 8, 16, 32):
        assert step_of({r: tile * -(-(64 - r) // tile) for r in removed}) == tile
    assert step_of({r: 64.0 - r for r in removed}) == 1
    assert step_of({r: 7.0 for r in removed}) == 1  # no measurable slope: no step claimed
    # Measured here (float32 3x3 convolution, 8x8, 32 inputs, µs at 64..32 outputs): 33 outputs
    # cost what 64 do. A test over M..M-16 alone saw no slope and answered 1.
    assert step_of({0: 25.23, 3: 25.20, 7: 25.20, 15: 25.09, 31: 25.13, 32: 12.88}) == 32
    assert step_of({0: 25.23, 3: 25.20, 7: 25.20, 15: 25.09, 16: 25.09}) == 1


def test_steps_are_timed_where_a_tile_stands_out_of_the_noise():
    from edgeprune.choose.latency import _measured_layers
    from edgeprune.choose.latency_steps import _step_layers
    from edgeprune.structured.graph import ChannelGraph

    x = keras.Input((16, 16, 64))
    y = keras.layers.Conv2D(64, 1, name="narrow")(x)
    y = keras.layers.Conv2D(1024, 1, name="wide")(keras.layers.MaxPooling2D()(y))
    model = keras.Model(x, keras.layers.Conv2D(8, 1)(y))
    chosen = _step_layers(_measured_layers(model, ChannelGraph(model)))
    # "wide" has 4x the multiply-accumulates, but 32 of its 1024 outputs are 3% of its time;
    # 32 of "narrow"'s 64 are half of it.
    layer, axis = chosen["conv1x1", "output"]
    assert (layer.name, axis) == ("narrow", "output")


def test_second_run_measures_nothing(measured):
    model, latency, cache, dense = measured
    again = ep.measure_latency_model(model, fractions=(0.5,), cache_dir=str(cache),
                                     progress=False)
    assert again.measured_probes == 0 and again.cached_probes == latency.measured_probes
    assert again.layers == latency.layers
    # The cache keeps every statistic; "remainder" adds a fixed difference instead of a factor.
    added = ep.measure_latency_model(model, fractions=(0.5,), cache_dir=str(cache),
                                     dense_tflite=dense, statistic="min", calibration="remainder",
                                     progress=False)
    assert added.measured_probes == 0 and added.scale == 1.0
    assert added.steps == latency.steps  # steps are read from the fastest runs, either way
    assert added.predict_ms({}) == pytest.approx(added.dense_measured_ms)


def closeness_table(model):
    x = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype("float32")
    reference = keras.ops.convert_to_numpy(model(x))

    def closeness(m):
        return -float(np.mean((keras.ops.convert_to_numpy(m(x)) - reference) ** 2))

    return ep.sensitivity_scan(model, closeness, sparsities=(0.25, 0.5, 0.75),
                               structure="channels", progress=False)


def test_latency_budget_is_met_with_kept_counts_on_each_groups_step(measured):
    model, latency, _, _ = measured
    table = closeness_table(model)
    target = 0.7 * latency.predict_ms({})
    allocation = ep.allocate(table, target, budget="latency", latency_model=latency)
    assert allocation.predicted_latency_ms <= target
    assert allocation.round_to == latency.round_to
    small = ep.shrink(ep.apply_channel_allocation(model, allocation))
    kept = latency.kept_channels(allocation.sparsity)
    assert small.get_layer("stem").filters == kept["stem"]
    assert small.get_layer("point").filters == kept["point"]
    assert all(count % latency.round_to[g] == 0 or count == latency.sizes[g]
               for g, count in kept.items())
    assert ep.measure_tflite_ms(ep.export_tflite(small), num_runs=20) > 0


def linear_latency_model():
    """The tiny model's groups costing time in proportion to their channels, on steps of 4: a
    latency model without timing noise, for the planning loop's arithmetic."""
    stem, point = {"stem": 32}, {"point": 48}
    layers = [LayerLatency("stem", "convkxk", 300.0, output=Axis(32, stem, 4, [(8, 75.0),
                                                                              (32, 300.0)])),
              LayerLatency("point", "conv1x1", 480.0,
                           input=Axis(32, stem, 4, [(8, 120.0), (32, 480.0)]),
                           output=Axis(48, point, 4, [(12, 120.0), (48, 480.0)]))]
    return LatencyModel("local", "float32", 1, "median", {**stem, **point},
                        {"stem": 4, "point": 4}, layers, remainder_us=50.0)


def test_a_plan_the_device_runs_slower_is_planned_again_for_less(measured):
    model = measured[0]
    table, latency = closeness_table(model), linear_latency_model()
    # A target the latency model's plan meets exactly, on a device 10% slower than it predicts.
    target = ep.allocate(table, 0.9 * latency.predict_ms({}), budget="latency",
                         latency_model=latency).predicted_latency_ms

    def slower_device(plan):
        return 1.1 * latency.predict_ms(plan.sparsity)

    plan = ep.plan_for_latency(table, target, latency, slower_device, tolerance=0.05)
    first, *later = plan.latency_rounds
    assert first["goal_ms"] == target and first["measured_ms"] == pytest.approx(1.1 * target)
    assert later, "the first plan missed by 10%: it must be planned again"
    assert later[0]["goal_ms"] == pytest.approx(target / 1.1)
    assert later[0]["measured_ms"] <= target * (1 + 1e-9)  # planned at most target / 1.1
    misses = [abs(r["measured_ms"] / target - 1) for r in plan.latency_rounds]
    assert abs(plan.measured_latency_ms / target - 1) == min(misses)
    assert plan.target == target
    assert ep.Allocation.from_dict(plan.to_dict()) == plan


def test_a_miss_that_cannot_be_corrected_warns_why(measured):
    table, latency = closeness_table(measured[0]), linear_latency_model()
    target = ep.allocate(table, 0.9 * latency.predict_ms({}), budget="latency",
                         latency_model=latency).predicted_latency_ms
    with pytest.warns(UserWarning, match=r"\+900% off .* cannot be planned .*max_sparsity"):
        plan = ep.plan_for_latency(table, target, latency,
                                   lambda p: 10 * latency.predict_ms(p.sparsity))
    assert len(plan.latency_rounds) == 1


def test_plans_are_measured_shrunk_and_converted_on_litert(measured):
    model, latency, _, _ = measured
    target = 0.7 * latency.predict_ms({})
    plan = ep.plan_for_latency(closeness_table(model), target, latency,
                               ep.shrunk_latency(model, ep.export_tflite, num_runs=10),
                               max_rounds=2)
    assert len(plan.latency_rounds) in (1, 2)
    assert plan.measured_latency_ms in [r["measured_ms"] for r in plan.latency_rounds]
    assert 0 < plan.measured_latency_ms < 10 * latency.dense_measured_ms
    # Timed beside the dense model, as a fraction of the dense latency given.
    beside_dense = ep.shrunk_latency(model, ep.export_tflite, num_runs=10, dense_ms=100.0)
    assert 10 < beside_dense(plan) < 200  # the plan keeps most of the work: tens of percent
    with pytest.raises(ValueError, match="tolerance must lie in"):
        ep.plan_for_latency(closeness_table(model), target, latency, float, tolerance=0)
    with pytest.raises(ValueError, match="max_rounds must be at least 1"):
        ep.plan_for_latency(closeness_table(model), target, latency, float, max_rounds=0)


def test_bad_arguments_are_named(measured):
    model, latency, cache, _ = measured
    table = ep.SensitivityTable(1.0, (0.5,), {"stem": [0.9]}, {"stem": 32}, [])
    with pytest.raises(ValueError, match="budget='latency' needs latency_model"):
        ep.allocate(table, 0.01, budget="latency")
    with pytest.raises(ValueError, match="structure='channels'"):
        ep.allocate(table, 0.01, budget="latency", latency_model=latency)
    with pytest.raises(ValueError, match="precision must be one of"):
        ep.measure_latency_model(model, precision="int4", cache_dir=str(cache))
    with pytest.raises(ValueError, match="calibration must be one of"):
        ep.measure_latency_model(model, calibration="ratio", cache_dir=str(cache))


def test_measures_over_one_ssh_connection(sshd, tmp_path):
    x = keras.Input((8, 8, 16))
    model = keras.Model(x, keras.layers.Conv2D(4, 1)(keras.layers.Conv2D(32, 1, name="only")(x)))
    latency = ep.measure_latency_model(
        model, target=sshd.target, fractions=(0.5,), cache_dir=str(tmp_path), num_runs=5,
        progress=False, known_hosts=sshd.known_hosts, key_filename=sshd.client_key,
        remote_python=sys.executable)
    assert latency.layers[0].output.width == 32 and latency.measured_probes >= 2
    assert latency.target == sshd.target
