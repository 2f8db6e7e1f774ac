"""Microcontroller board profiles (flash and SRAM) and the fits / does-not-fit verdict.

Built-in boards come from the vendors' specifications. Your own boards go in a YAML file:

    boards:
      my_board:
        description: STM32H7 custom board
        flash: 2MB          # bytes as an integer, or with KB/MB (1 KB = 1024 bytes)
        ram: 1MB
        flash_reserved: 128KB   # optional: application code and other data in flash
        ram_reserved: 64KB      # optional: stack, heap and buffers outside the arena

>>> check_fit(BUILTIN_BOARDS["nano33ble"], model_bytes=300 * 1024, arena_bytes=100 * 1024)[2]
'fits nano33ble: flash 300.0 of 1024.0 KiB (724.0 KiB left), RAM 100.0 of 256.0 KiB (156.0 KiB left)'
"""

import difflib
import re
from dataclasses import dataclass

from device_bench.errors import BenchError
from device_bench.fileio import read_text_file
from device_bench.schema import MemoryVerdict
from device_bench.yamlfile import parse_yaml

KIB = 1024
BOARDS_FILE_MAX_BYTES = 1 << 20  # a few boards take a few hundred bytes


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    flash_bytes: int
    ram_bytes: int
    flash_reserved_bytes: int = 0
    ram_reserved_bytes: int = 0


BUILTIN_BOARDS = {b.name: b for b in (
    Board("nano33ble", "Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F 64 MHz)", 1024 * KIB, 256 * KIB),
    Board("pico", "Raspberry Pi Pico (RP2040, 2x Cortex-M0+ 133 MHz)", 2048 * KIB, 264 * KIB),
    Board("pico2", "Raspberry Pi Pico 2 (RP2350, Cortex-M33 150 MHz)", 4096 * KIB, 520 * KIB),
    Board("esp32s3", "ESP32-S3-DevKitC-1 N8R8 (LX7 240 MHz; +8 MB PSRAM not counted)",
          8192 * KIB, 512 * KIB),
    Board("stm32f746disco", "STM32F746G-DISCO (Cortex-M7 216 MHz)", 1024 * KIB, 320 * KIB),
    Board("nucleo_l4r5zi", "NUCLEO-L4R5ZI, MLPerf Tiny reference (Cortex-M4 120 MHz)",
          2048 * KIB, 640 * KIB),
    Board("sparkfun_edge", "SparkFun Edge (Apollo3, Cortex-M4F 48 MHz)", 1024 * KIB, 384 * KIB),
)}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|k|mb|mib|m)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": KIB * KIB, "mb": KIB * KIB,
          "mib": KIB * KIB}


def parse_size(value, where):
    """Bytes from 262144, '256KB' or '1 MB' (binary units); BenchError naming `where` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value)) if isinstance(value, (str, float)) else None
    if not match:
        raise BenchError(f"{where}: {value!r} is not a size; write bytes (262144) or 256KB / 1MB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None])


def load_boards_file(path):
    """{name: Board} from a YAML file in the format of this module's docstring."""
    text = read_text_file(path, BOARDS_FILE_MAX_BYTES, label="boards file ")
    data = parse_yaml(text, f"boards file {path}")
    if not isinstance(data, dict) or not isinstance(data.get("boards"), dict):
        raise BenchError(f"boards file {path}: expected a top-level 'boards:' mapping of "
                         "board names to {flash: ..., ram: ...}")
    return {name: _board_from_yaml(path, str(name), entry) for name, entry in data["boards"].items()}


def _board_from_yaml(path, name, entry):
    where = f"boards file {path}, board {name!r}"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected a mapping with flash and ram")
    known = {"description", "flash", "ram", "flash_reserved", "ram_reserved"}
    unknown = sorted(set(entry) - known)
    missing = sorted({"flash", "ram"} - set(entry))
    if unknown or missing:
        raise BenchError(f"{where}: " + "; ".join(
            ([f"unknown key(s) {', '.join(map(str, unknown))}"] if unknown else []) +
            ([f"missing {', '.join(missing)}"] if missing else [])) +
            f" (allowed: {', '.join(sorted(known))})")
    return Board(name, str(entry.get("description", name)),
                 parse_size(entry["flash"], f"{where}, flash"), parse_size(entry["ram"], f"{where}, ram"),
                 parse_size(entry.get("flash_reserved", 0), f"{where}, flash_reserved"),
                 parse_size(entry.get("ram_reserved", 0), f"{where}, ram_reserved"))


def find_board(name, boards_file=None):
    boards = dict(BUILTIN_BOARDS)
    if boards_file:
        boards.update(load_boards_file(boards_file))
    if name not in boards:
        close = difflib.get_close_matches(name, boards, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BenchError(f"unknown board {name!r}{hint}; known boards: "
                         f"{', '.join(sorted(boards))} (add your own with --boards_file, see "
                         "device_bench/boards.py)")
    return boards[name]


def _memory(needed, total, reserved):
    available = total - reserved
    return MemoryVerdict(needed_bytes=needed, available_bytes=available, fits=needed <= available,
                         margin_bytes=available - needed)


def _describe(label, verdict):
    needed, available = verdict.needed_bytes / KIB, verdict.available_bytes / KIB
    if verdict.fits:
        return f"{label} {needed:.1f} of {available:.1f} KiB ({verdict.margin_bytes / KIB:.1f} KiB left)"
    return (f"{label} needs {needed:.1f} KiB but only {available:.1f} KiB is free "
            f"({-verdict.margin_bytes / KIB:.1f} KiB over)")


def check_fit(board, model_bytes, arena_bytes):
    """(flash verdict, RAM verdict, one-line text): model in flash, tensor arena in RAM."""
    flash = _memory(model_bytes, board.flash_bytes, board.flash_reserved_bytes)
    ram = _memory(arena_bytes, board.ram_bytes, board.ram_reserved_bytes)
    head = f"fits {board.name}" if flash.fits and ram.fits else f"does NOT fit {board.name}"
    return flash, ram, f"{head}: {_describe('flash', flash)}, {_describe('RAM', ram)}"
