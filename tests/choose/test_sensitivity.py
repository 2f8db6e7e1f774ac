"""sensitivity_scan: finds the sensitive layer, never touches the user's model, one working copy."""

import json

import matplotlib
import numpy as np
import pytest

import edgeprune as ep
from tests.choose.conftest import accuracy_on, named_cnn

matplotlib.use("Agg")
LEVELS = (0.5, 0.8, 0.95)


def test_scan_finds_the_layer_made_sensitive(fragile_cnn, trained_cnn, digits):
    accuracy = accuracy_on(digits)
    assert accuracy(fragile_cnn) == pytest.approx(accuracy(trained_cnn), abs=0.01)
    table = ep.sensitivity_scan(fragile_cnn, accuracy, sparsities=LEVELS, progress=False)
    assert table.units == ["conv1", "conv2", "hidden", "fragile", "head"]
    assert table.ranking(0.5)[0] == "fragile"
    # The big trained dense layer loses almost nothing at 50%; the Hadamard layer a lot.
    assert table.drop("fragile")[0] > 0.2
    assert table.drop("hidden")[0] < 0.05
    assert table.sizes["hidden"] == 6 * 6 * 16 * 64  # Flatten of the 6x6x16 conv output
    assert table.macs["conv1"] == 8 * 8 * 9 * 8  # 'same' padding: 64 output positions


def test_scan_uses_one_copy_and_leaves_the_model_unchanged(trained_cnn, digits):
    before = [w.copy() for w in trained_cnn.get_weights()]
    seen = []
    accuracy = accuracy_on(digits)

    def recording_accuracy(model):
        seen.append(model)
        return accuracy(model)

    table = ep.sensitivity_scan(trained_cnn, recording_accuracy, sparsities=LEVELS,
                                layers=["hidden", "conv1"], progress=False)
    assert table.units == ["hidden", "conv1"]
    assert len(seen) == 1 + 2 * len(LEVELS)
    assert all(model is seen[0] for model in seen) and seen[0] is not trained_cnn
    for a, b in zip(before, trained_cnn.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The copy was restored after every level: it still scores the baseline.
    assert accuracy(seen[0]) == table.baseline == accuracy(trained_cnn)


@pytest.mark.every_backend
def test_scan_prunes_each_level_exactly():
    model = named_cnn()  # untrained: the zeros counted do not depend on training
    zeros = []

    def count_zeros(model):
        zeros.append(int(np.sum(model.get_layer("conv2").kernel.numpy() == 0)))
        return 0.0

    ep.sensitivity_scan(model, count_zeros, sparsities=LEVELS, layers=["conv2"], progress=False)
    size = model.get_layer("conv2").kernel.numpy().size
    assert zeros == [0] + [size - round(size * (1 - s)) for s in LEVELS]


def test_table_exports(trained_cnn, tmp_path):
    table = ep.sensitivity_scan(trained_cnn, lambda m: 1.0, sparsities=(0.5, 0.9),
                                progress=False)
    again = ep.SensitivityTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table
    text = table.to_csv(tmp_path / "scan.csv")
    assert (tmp_path / "scan.csv").read_text() == text
    assert text.splitlines()[0] == "unit,size,sparsity,metric,drop"
    assert len(text.splitlines()) == 1 + 2 * len(table.units)
    markdown = table.to_markdown()
    assert "| conv1 | 72 | 1.0000 | 1.0000 |" in markdown
    ax = table.plot()
    assert len(ax.get_lines()) == len(table.units) + 1


def test_bad_arguments_name_the_argument(trained_cnn):
    def metric(model):
        return 1.0

    for sparsities in [(0.0, 0.5), (0.5, 1.0), (), ("a",), (0.5, 0.5)]:
        with pytest.raises(ValueError, match="sparsities"):
            ep.sensitivity_scan(trained_cnn, metric, sparsities=sparsities)
    with pytest.raises(ValueError, match="structure"):
        ep.sensitivity_scan(trained_cnn, metric, structure="rows")
    with pytest.raises(ValueError, match="criterion.*block_size"):
        ep.sensitivity_scan(trained_cnn, metric, criterion="l2")
    with pytest.raises(ValueError, match="layers.*nope"):
        ep.sensitivity_scan(trained_cnn, metric, layers=["nope"])
    with pytest.raises(ValueError, match="eval_fn must return one number"):
        ep.sensitivity_scan(trained_cnn, lambda m: [1, 2], progress=False)
    with pytest.raises(ValueError, match="eval_fn"):
        ep.sensitivity_scan(trained_cnn, "accuracy")


def test_block_scan_prunes_whole_blocks(trained_cnn):
    zeros = []

    def count_zero_blocks(model):
        kernel = model.get_layer("hidden").kernel.numpy()
        blocks = np.abs(kernel).reshape(kernel.shape[0], -1, 4).sum(-1)  # 1x4 blocks
        zeros.append((int(np.sum(blocks == 0)), int(np.sum(kernel == 0))))
        return 0.0

    ep.sensitivity_scan(trained_cnn, count_zero_blocks, sparsities=(0.5,), layers=["hidden"],
                        block_size=(1, 4), progress=False)
    count = trained_cnn.get_layer("hidden").kernel.numpy().size // 4
    removed = count - round(count * 0.5)
    assert zeros[1] == (removed, 4 * removed)


def test_eval_fn_may_use_the_compiled_evaluate(trained_cnn, digits):
    (_, _), (x_test, y_test) = digits

    def negative_loss(model):
        return -model.evaluate(x_test, y_test, verbose=0)

    table = ep.sensitivity_scan(trained_cnn, negative_loss, sparsities=(0.9,), layers=["head"],
                                progress=False)
    assert table.baseline == pytest.approx(negative_loss(trained_cnn), rel=1e-5)
    assert table.drop("head")[0] > 0
