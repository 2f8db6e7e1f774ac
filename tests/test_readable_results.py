"""Result objects print as readable summaries, totals and ratios first, and an allocation's dict
is plain values that YAML and JSON take as they are."""

import json

import keras
import numpy as np
import yaml

import edgeprune as ep
from edgeprune.quantize.check import ValidationReport
from edgeprune.quantize.micro import MicroExport


def test_allocation_to_dict_is_plain_values_for_a_yaml_recipe():
    allocation = ep.Allocation({"conv": np.float64(0.5), "dense": np.float32(0.9)},
                               {"conv": np.int64(100), "dense": 900}, target=np.float64(0.8),
                               predicted_drop=np.float64(0.01))
    data = allocation.to_dict()
    assert yaml.safe_load(yaml.safe_dump(data)) == data == json.loads(json.dumps(data))
    assert type(data["sparsity"]["conv"]) is float and type(data["sizes"]["conv"]) is int
    assert repr(allocation.sparsity) == "{'conv': 0.5, 'dense': 0.8999999761581421}"
    assert ep.Allocation.from_dict(data) == allocation


def test_a_computed_allocation_dumps_to_yaml():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="a"),
                              keras.layers.Dense(4, name="b")])
    data = ep.global_magnitude_allocation(model, 0.5).to_dict()
    assert yaml.safe_load(yaml.safe_dump(data)) == data


def test_shrink_report_opens_with_totals_and_ratios():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(10, name="head")])
    pruned = ep.prune_channels(model, sparsity=0.5)
    text = str(ep.shrink_report(pruned, ep.shrink(pruned)))
    first = text.splitlines()[0]
    assert first == ("parameters 2,970 → 1,490 (1.99x fewer), MACs 5,472 → 2,736 (2.00x fewer); "
                     "2 of 4 layers lost channels, 0 unprunable")
    assert "| conv | Conv2D | 8 → 4 |" in text


def test_validation_report_reads_as_a_sentence_not_a_repr():
    report = ValidationReport(450, 0.012345678901, 0.0012345678901, 0.9933333333333333,
                              0.9577777777777777, 0.96)
    assert str(report).splitlines() == [
        "450 samples: top-1 agreement with Keras 99.33%; accuracy .tflite 95.78%, Keras 96.00% "
        "(-0.22 points)",
        "output difference from Keras: max 0.0123, mean 0.00123"]
    assert str(ValidationReport(8, 0.0, 0.0, 1.0)).startswith(
        "8 samples: top-1 agreement with Keras 100.00%\n")


def test_micro_export_lists_its_files_and_the_ops_to_register():
    out = MicroExport("fw/model_data.h", "fw/model_data.c", "g_model",
                      ["static tflite::MicroMutableOpResolver<2> op_resolver;",
                       "op_resolver.AddConv2D();", "op_resolver.AddFullyConnected();"])
    assert str(out).splitlines() == [
        "g_model: fw/model_data.c and fw/model_data.h; 2 ops to register:",
        "  static tflite::MicroMutableOpResolver<2> op_resolver;",
        "  op_resolver.AddConv2D();", "  op_resolver.AddFullyConnected();"]
