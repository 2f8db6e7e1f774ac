"""The ssh:// target against a real sshd on 127.0.0.1 (see conftest.sshd)."""

import socket
import sys
import threading

import pytest

import device_bench
from device_bench.targets.ssh import parse_address
from tests.device_bench.ssh_server import write_key


def ssh_options(sshd, **extra):
    return {"known_hosts": sshd.known_hosts, "key_filename": sshd.client_key,
            "remote_python": sys.executable, **extra}


def test_benchmarks_two_models_through_sshd_and_cleans_up(sshd, models, fast_settings, tmp_path):
    remote_root = tmp_path / "remote tmp"
    remote_root.mkdir()
    result = device_bench.benchmark([models["float"], models["int8"]], target=sshd.target,
                                    **ssh_options(sshd, remote_temp_root=str(remote_root)),
                                    **fast_settings)
    assert result.target == sshd.target
    assert [m.graph for m in result.models] == [models["float"], models["int8"]]
    assert all(m.latency.count >= 20 for m in result.models)
    assert result.models[1].inputs[0]["dtype"] == "int8"
    assert result.comparisons[0].ratio.pairs >= 20
    assert list(remote_root.iterdir()) == []


def test_path_with_spaces_and_quotes_is_quoted(sshd, models, fast_settings, tmp_path):
    odd = tmp_path / "it's a $(model) name.tflite"
    odd.write_bytes(open(models["float"], "rb").read())
    result = device_bench.benchmark(str(odd), target=sshd.target, **ssh_options(sshd),
                                    **fast_settings)
    assert result.models[0].latency.count >= 20


def test_unknown_host_key_is_refused(sshd, models, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(device_bench.BenchError) as caught:
        device_bench.benchmark(models["float"], target=sshd.target,
                               **ssh_options(sshd, known_hosts=str(empty)))
    message = str(caught.value)
    assert f"127.0.0.1:{sshd.port}" in message and "ssh-keyscan" in message
    assert "--ssh_no_host_key_check" in message


def test_changed_host_key_is_refused(sshd, models, tmp_path):
    other_public = write_key(str(tmp_path / "other_key"))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {other_public}\n")
    with pytest.raises(device_bench.BenchError, match="host key differs.*ssh-keygen -R"):
        device_bench.benchmark(models["float"], target=sshd.target,
                               **ssh_options(sshd, known_hosts=str(known_hosts)))


def test_missing_key_file_is_named(sshd, models):
    with pytest.raises(device_bench.BenchError, match="SSH key file /no/key not found"):
        device_bench.benchmark(models["float"], target=sshd.target,
                               **ssh_options(sshd, key_filename="/no/key"))


def test_opting_out_of_host_key_check_connects(sshd, models, fast_settings, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.warns(UserWarning, match=r"host key is NOT checked"):
        result = device_bench.benchmark(
            models["float"], target=sshd.target, **fast_settings,
            **ssh_options(sshd, known_hosts=str(empty), check_host_key=False))
    assert result.models[0].latency.count >= 20


def test_board_without_ai_edge_litert_gives_clear_error(sshd, models, tmp_path):
    # A Python where `import ai_edge_litert` fails, as on a fresh Raspberry Pi OS.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "ai_edge_litert.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ai_edge_litert'\", name='ai_edge_litert')\n")
    wrapper = tmp_path / "python_without_litert"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={shadow} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    remote_root = tmp_path / "remote"
    remote_root.mkdir()
    with pytest.raises(device_bench.BenchError) as caught:
        device_bench.benchmark(models["float"], target=sshd.target,
                               **ssh_options(sshd, remote_python=str(wrapper),
                                             remote_temp_root=str(remote_root)))
    assert list(remote_root.iterdir()) == []  # cleaned up after the failure too
    message = str(caught.value)
    assert "ai_edge_litert" in message and "pip install ai-edge-litert" in message
    assert f"127.0.0.1:{sshd.port}" in message


def test_missing_remote_python_is_named(sshd, models):
    with pytest.raises(device_bench.BenchError, match="not found on the board"):
        device_bench.benchmark(models["float"], target=sshd.target,
                               **ssh_options(sshd, remote_python="/no/such/python3"))


def test_closed_port_is_a_clear_error(models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound but not listening: connections are refused
        with pytest.raises(device_bench.BenchError, match="cannot reach the board"):
            device_bench.benchmark(models["float"], target=f"ssh://me@127.0.0.1:{port}",
                                   timeout=2)


def test_silent_server_times_out_with_clear_error(models):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
        with pytest.raises(device_bench.BenchError, match="no SSH answer within 1 s"):
            device_bench.benchmark(models["float"],
                                   target=f"ssh://me@127.0.0.1:{server.getsockname()[1]}",
                                   timeout=1)


@pytest.mark.parametrize("address, expected", [
    ("pi@raspberrypi.local", ("pi", "raspberrypi.local", 22)),
    ("pi@10.0.0.5:2222", ("pi", "10.0.0.5", 2222)),
    ("board", (None, "board", 22)),
    ("u@[fe80::1]:2200", ("u", "fe80::1", 2200)),
])
def test_parse_address(address, expected):
    assert parse_address(address) == expected


def test_bad_port_is_named():
    with pytest.raises(device_bench.BenchError, match="port 'x' is not a number"):
        parse_address("pi@host:x")
