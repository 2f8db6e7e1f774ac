"""Fixtures: tiny .tflite models (built once with TensorFlow) and a real SSH server on 127.0.0.1."""

import fcntl
import getpass
import json
import os
import socket
import subprocess
import time

import pytest

from tests.device_bench.model_factory import build_models

SSHD = "/usr/sbin/sshd"


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{name: path}: float, float_twin, int8, uint8, two_inputs, dynamic, sparse.

    Built once per test session: pytest-xdist workers share them through their common base temp
    folder, the first one building while the others wait on a file lock.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, index = shared / "device_bench_models", shared / "device_bench_models.json"
    with open(shared / "device_bench_models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index.exists():
            folder.mkdir()
            index.write_text(json.dumps(build_models(str(folder))))
    return json.loads(index.read_text())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port, process, log):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {open(log).read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {port}: {open(log).read()}")


class Sshd:
    def __init__(self, port, user, client_key, known_hosts):
        self.port, self.user = port, user
        self.client_key, self.known_hosts = client_key, known_hosts

    @property
    def target(self):
        return f"ssh://{self.user}@127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real SSH server on 127.0.0.1 for the current user, with throwaway keys.

    OpenSSH's sshd where it is installed, else asyncssh's server in-process (ssh_server.py), so
    the tests need no system package. EDGEPRUNE_TEST_SSHD=openssh|asyncssh picks one.
    """
    from tests.device_bench import ssh_server

    backend = os.environ.get("EDGEPRUNE_TEST_SSHD") or (
        "openssh" if os.path.exists(SSHD) else "asyncssh")
    if backend not in ("openssh", "asyncssh"):
        pytest.fail(f"EDGEPRUNE_TEST_SSHD={backend!r}: use openssh or asyncssh")
    folder = str(tmp_path_factory.mktemp("sshd"))
    host_key = os.path.join(folder, "host_key")
    host_key_pub = ssh_server.write_key(host_key)
    client_key = os.path.join(folder, "client_key")
    authorized = os.path.join(folder, "authorized_keys")
    with open(authorized, "w") as f:
        f.write(ssh_server.write_key(client_key) + "\n")
    user = getpass.getuser()
    known_hosts = os.path.join(folder, "known_hosts")

    def served(port):
        with open(known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{port} {host_key_pub}\n")
        return Sshd(port, user, client_key, known_hosts)

    if backend == "asyncssh":
        with ssh_server.InProcessSshd(host_key, authorized, user) as server:
            yield served(server.port)
        return
    if not os.path.exists(SSHD):
        pytest.fail(f"EDGEPRUNE_TEST_SSHD=openssh but {SSHD} is missing: apt-get install -y "
                    "openssh-server, or leave EDGEPRUNE_TEST_SSHD unset for the in-process server")
    port = free_port()
    config = os.path.join(folder, "sshd_config")
    with open(config, "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
                f"AuthorizedKeysFile {authorized}\nPidFile {folder}/sshd.pid\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "StrictModes no\nPermitRootLogin yes\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege-separation dir sshd requires as root
    log = os.path.join(folder, "sshd.log")
    with open(log, "w") as log_file:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=log_file,
                                   stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, log)
        yield served(port)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def fast_settings():
    """benchmark() keyword arguments for short runs."""
    return {"num_runs": 20, "min_secs": 0.05, "warmup_runs": 1, "warmup_min_secs": 0.0,
            "max_secs": 20}
