import pytest

from device_bench import boards
from device_bench.errors import BenchError


@pytest.mark.parametrize("value, expected", [(1000, 1000), ("256KB", 262144), ("1 MB", 1048576),
                                             ("2MiB", 2097152), ("1.5k", 1536), ("512", 512)])
def test_parse_size(value, expected):
    assert boards.parse_size(value, "x") == expected


@pytest.mark.parametrize("value", ["lots", "-5", True, None, "1 GB"])
def test_bad_size_is_named(value):
    with pytest.raises(BenchError, match="board 'b', ram: .* is not a size"):
        boards.parse_size(value, "board 'b', ram")


def test_builtin_table_matches_reference():
    pico2 = boards.BUILTIN_BOARDS["pico2"]
    assert (pico2.flash_bytes, pico2.ram_bytes) == (4 << 20, 520 * 1024)
    assert len(boards.BUILTIN_BOARDS) == 7


def test_user_board_file(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("boards:\n  mine:\n    description: my board\n    flash: 512KB\n    ram: 96KB\n"
                    "    flash_reserved: 100KB\n")
    board = boards.find_board("mine", str(path))
    assert board == boards.Board("mine", "my board", 512 * 1024, 96 * 1024, 100 * 1024, 0)
    assert boards.find_board("pico", str(path)).name == "pico"  # built-ins stay available


@pytest.mark.parametrize("text, message", [
    ("boards:\n  b:\n    flash: 1MB\n", "missing ram"),
    ("boards:\n  b:\n    flash: 1MB\n    ram: 1KB\n    sram: 2KB\n", "unknown key\\(s\\) sram"),
    ("- a\n- b\n", "top-level 'boards:'"),
    ("boards: [\n", "not valid YAML"),
    ("boards:\n  b: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("boards:\n  b: 5\n", "expected a mapping"),
])
def test_bad_board_files_are_explained(tmp_path, text, message):
    path = tmp_path / "b.yaml"
    path.write_text(text)
    with pytest.raises(BenchError, match=message) as caught:
        boards.find_board("b", str(path))
    assert str(path) in str(caught.value)


def test_unknown_board_lists_known_ones():
    with pytest.raises(BenchError, match="unknown board 'uno'.*nano33ble.*--boards_file"):
        boards.find_board("uno")


def test_missing_board_file():
    with pytest.raises(BenchError, match="cannot read it"):
        boards.find_board("x", "/no/such/boards.yaml")
