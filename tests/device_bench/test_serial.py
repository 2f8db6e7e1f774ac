"""The serial protocol read through a real pseudo-terminal pair, a thread playing the board."""

import os
import threading
import time

import pytest

import device_bench
from device_bench.errors import BenchError
from device_bench.serial_protocol import ProtocolParser

BOARD_OUTPUT = ["TFLM benchmark sketch v1", "DB1 BEGIN model=kws_int8 arena=1500 runs=5"] + [
    f"DB1 RUN {i} {1000 + 10 * i}" for i in range(5)] + ["debug: done", "DB1 END"]


@pytest.fixture
def board():
    """(slave device path, write(lines)) of a pty pair; written lines arrive on the slave."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    threads = []

    def write(lines, delay=0.01, newline_after=lambda line: True):
        def play():
            time.sleep(0.2)  # let the reader open the port first, like a board after reset
            for line in lines:
                os.write(master, (line + ("\r\n" if newline_after(line) else "")).encode())
                time.sleep(delay)
        threads.append(threading.Thread(target=play, daemon=True))
        threads[-1].start()

    yield path, write
    for thread in threads:
        thread.join(timeout=5)
    os.close(master)
    os.close(slave)


def test_reads_a_benchmark_through_the_pty(board, models):
    path, write = board
    write(BOARD_OUTPUT)
    result = device_bench.benchmark(models["int8"], target=f"serial://{path}", board="nano33ble",
                                    timeout=10)
    model = result.models[0]
    assert model.latency.count == 5
    assert model.latency.min_us == 1000 and model.latency.max_us == 1040
    assert model.latency.p50_us == 1020
    assert result.runtime["board_model_name"] == "kws_int8"
    assert model.micro.ram.needed_bytes == 1500 and model.micro.fits is True


def test_line_split_across_read_timeouts_is_joined(board, models):
    path, write = board
    # "DB1 RUN 1 2000" arrives in two pieces, further apart than the reader's 0.2 s poll.
    write(["DB1 BEGIN model=m", "DB1 RUN 0 1000", "DB1 RU", "N 1 2000", "DB1 END"], delay=0.5,
          newline_after=lambda line: line != "DB1 RU")
    result = device_bench.benchmark(models["int8"], target=f"serial://{path}", timeout=10)
    assert result.models[0].latency.max_us == 2000


def test_board_error_line_is_reported(board, models):
    path, write = board
    write(["DB1 BEGIN model=m", "DB1 ERROR AllocateTensors failed: arena too small"])
    with pytest.raises(BenchError, match="board reported an error: AllocateTensors failed"):
        device_bench.benchmark(models["int8"], target=f"serial://{path}", timeout=10)


def test_silent_board_times_out_with_advice(board, models):
    path, write = board
    write(["booting..."])
    with pytest.raises(BenchError, match="no DB1 END within 1 s.*no DB1 BEGIN seen.*baud rate"):
        device_bench.benchmark(models["int8"], target=f"serial://{path}", timeout=1)


def test_missing_port_is_named(models):
    with pytest.raises(BenchError, match="/dev/no_such_tty: cannot open"):
        device_bench.benchmark(models["int8"], target="serial:///dev/no_such_tty", timeout=1)


@pytest.mark.parametrize("lines, message", [
    (["DB1 BEGIN model=m", "DB1 RUN 0 5", "DB1 RUN 2 5"], "expected run 1, got run 2"),
    (["DB1 RUN 0 5"], "before DB1 BEGIN"),
    (["DB1 BEGIN model=m runs=3", "DB1 RUN 0 5", "DB1 END"], "announced 3 runs but 1 arrived"),
    (["DB1 BEGIN arena=5"], "lacks model=NAME"),
    (["DB1 BEGIN model=m", "DB1 RUN 0 fast"], "'fast' is not a number"),
    (["DB1 HELLO"], "unknown protocol line"),
    (["DB1 BEGIN model=m", "DB1 END"], "without any DB1 RUN"),
])
def test_protocol_violations_are_explained(lines, message):
    parser = ProtocolParser("COM3")
    with pytest.raises(BenchError, match=message):
        for line in lines:
            parser.feed(line)


def test_serial_target_takes_one_model(models):
    with pytest.raises(BenchError, match="one model per run"):
        device_bench.benchmark([models["int8"], models["float"]], target="serial:///dev/null")
