"""device_bench.session: many benchmarks over one connection (ssh against a real sshd)."""

import os
import sys

import pytest

import device_bench


def test_ssh_session_connects_and_uploads_the_runner_once(sshd, models, fast_settings, tmp_path):
    remote_root = tmp_path / "remote"
    remote_root.mkdir()
    with device_bench.session(sshd.target, known_hosts=sshd.known_hosts,
                              key_filename=sshd.client_key, remote_python=sys.executable,
                              remote_temp_root=str(remote_root)) as bench:
        transport = bench._open.client.get_transport()
        runner = os.path.join(bench._open.tmp, "runner.py")
        uploaded = os.stat(runner).st_mtime_ns
        first = bench.benchmark(models["float"], **fast_settings)
        second = bench.benchmark([models["int8"], models["float"]], **fast_settings)
        # Same SSH transport, same runner file: no second handshake or upload.
        assert bench._open.client.get_transport() is transport and transport.is_active()
        assert os.stat(runner).st_mtime_ns == uploaded
    assert first.models[0].latency.count >= 20
    assert [m.graph for m in second.models] == [models["int8"], models["float"]]
    assert not transport.is_active()
    assert list(remote_root.iterdir()) == []  # the temp dir went with the session


def test_local_session_and_bad_settings(models, fast_settings):
    with device_bench.session("local") as bench:
        assert bench.benchmark(models["float"], **fast_settings).models[0].latency.count >= 20
        with pytest.raises(device_bench.BenchError, match="unknown run settings.*key_filename"):
            bench.benchmark(models["float"], key_filename="k")


def test_a_connection_closed_between_runs_is_a_clear_error(sshd, models, fast_settings, tmp_path):
    # Where the drop lands decides what paramiko raises (here "Socket is closed", an OSError, from
    # the upload; elsewhere an SSHException or EOFError): each is one BenchError saying so.
    with pytest.warns(UserWarning, match="could not remove the temp dir"):
        with device_bench.session(sshd.target, known_hosts=sshd.known_hosts,
                                  key_filename=sshd.client_key, remote_python=sys.executable,
                                  remote_temp_root=str(tmp_path)) as bench:
            bench.benchmark(models["float"], **fast_settings)
            bench._open.client.get_transport().close()
            with pytest.raises(device_bench.BenchError, match="SSH connection dropped while"):
                bench.benchmark(models["float"], **fast_settings)
