"""Latency models measured on a real LiteRT interpreter (local target, and one over SSH), and
allocation under a latency budget."""

import sys

import keras
import numpy as np
import pytest

import edgeprune as ep
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


def test_latency_budget_is_met_with_kept_counts_on_each_groups_step(measured):
    model, latency, _, _ = measured
    x = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype("float32")
    reference = keras.ops.convert_to_numpy(model(x))

    def closeness(m):
        return -float(np.mean((keras.ops.convert_to_numpy(m(x)) - reference) ** 2))

    table = ep.sensitivity_scan(model, closeness, sparsities=(0.25, 0.5, 0.75),
                                structure="channels", progress=False)
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
