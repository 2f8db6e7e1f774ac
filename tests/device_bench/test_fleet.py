"""Several devices at once (device_bench.fleet): real local, SSH (conftest.sshd), micro targets."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from device_bench import cli
from device_bench.errors import BenchError
from device_bench.fleet import benchmark_fleet
from device_bench.fleet_file import Device, load_fleet
from device_bench.schema import FleetResult
from tests.device_bench.test_ssh import ssh_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["--num_runs=10", "--min_secs=0", "--warmup_runs=1", "--warmup_min_secs=0"]


def write_fleet(path, devices):
    path.write_text(json.dumps({"devices": devices}))
    return str(path)


def ssh_entry(sshd, **extra):
    return {"target": sshd.target, **ssh_options(sshd, **extra)}


def test_three_devices_one_failing_gives_two_rows_and_an_error_row(sshd, models, tmp_path,
                                                                   capsys):
    remote_root = tmp_path / "remote"
    remote_root.mkdir()
    fleet_file = write_fleet(tmp_path / "fleet.json", {
        "here": {"target": "local"},
        "pi": ssh_entry(sshd, remote_temp_root=str(remote_root)),
        # A Python that exits at once: the TFLite Micro probe fails, on purpose.
        "mcu": {"target": "micro", "board": "nano33ble", "python": "/bin/false"},
    })
    out = {kind: tmp_path / f"fleet.{kind}" for kind in ("json", "csv", "svg")}
    code = cli.main([f"--graph={models['int8']}", f"--fleet={fleet_file}", *FAST,
                     *(f"--output_{kind}={path}" for kind, path in out.items())])
    captured = capsys.readouterr()
    assert code == 2
    assert "1 of 3 devices failed (mcu)" in captured.err
    rows = {line.split()[0]: line for line in captured.out.splitlines()[2:] if line.strip()}
    assert rows["here"].endswith(" ok") and rows["pi"].endswith(" ok")
    assert "failed: micro: the TFLite Micro probe" in rows["mcu"]

    fleet = FleetResult.from_dict(json.loads(out["json"].read_text()))
    assert [(d.name, d.status) for d in fleet.devices] == [
        ("here", "ok"), ("pi", "ok"), ("mcu", "failed")]
    for device in fleet.devices[:2]:
        assert device.result.models[0].graph == models["int8"]
        assert device.result.models[0].latency.count >= 10
    assert fleet.devices[2].result is None and "exit status 1" in fleet.devices[2].error
    assert fleet.lanes == [["here", "mcu"], ["pi"]]   # local and micro share this computer
    assert list(remote_root.iterdir()) == []          # the SSH target cleaned up on the board
    csv_rows = list(csv.DictReader(out["csv"].read_text().splitlines()))
    assert [(r["device"], r["status"]) for r in csv_rows] == [
        ("here", "ok"), ("pi", "ok"), ("mcu", "failed")]
    assert int(csv_rows[1]["count"]) >= 10
    svg = out["svg"].read_text()
    assert svg.count("<rect") == 2 and "failed: micro" in svg


def test_repeated_target_runs_a_fleet_and_options_reach_the_targets_that_take_them(models,
                                                                                   capsys):
    code = cli.main([f"--graph={models['int8']},{models['float']}", "--target=local",
                     "--target=micro", "--board=nano33ble", *FAST])
    table = capsys.readouterr().out
    assert code == 0
    assert "vs first" in table and "fits nano33ble" in table
    assert "one after another (this computer's CPUs): local, micro" in table


def test_a_device_past_the_timeout_is_stopped_and_the_others_keep_their_rows(models, tmp_path):
    # A Python under a name of this test's own, to find the runner processes it leaves.
    python = tmp_path / "python-fleet-timeout"
    python.symlink_to(sys.executable)
    result = benchmark_fleet(models["float"], [
        Device("slow", "local", {"python": str(python), "min_secs": 60.0, "max_secs": 120.0}),
        Device("closed", "ssh://me@127.0.0.1:1", {"timeout": 2.0}),
    ], device_timeout=6, num_runs=5)
    slow, closed = result.devices
    assert slow.status == "timeout" and "did not finish within 6 s" in slow.error
    assert closed.status == "failed" and "cannot reach the board" in closed.error
    assert not processes_running(str(python))


def test_ctrl_c_stops_every_worker_and_writes_nothing(sshd, models, tmp_path):
    python = tmp_path / "python-fleet-interrupt"
    python.symlink_to(sys.executable)
    remote_root = tmp_path / "remote"
    remote_root.mkdir()
    fleet_file = write_fleet(tmp_path / "fleet.json", {
        "here": {"target": "local", "python": str(python)},
        "pi": ssh_entry(sshd, remote_temp_root=str(remote_root), remote_python=str(python)),
    })
    out = tmp_path / "fleet_result.json"
    command = subprocess.Popen(
        [sys.executable, "-m", "device_bench", f"--graph={models['float']}",
         f"--fleet={fleet_file}", "--min_secs=20", "--max_secs=30", f"--output_json={out}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(processes_running(str(python))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        # (>= 2: the board's shell may still be there before it runs the runner)
        assert len(processes_running(str(python))) >= 2, "both devices should be running"
        command.send_signal(signal.SIGINT)
        _, err = command.communicate(timeout=30)
        left = processes_running(str(python))
    finally:
        command.kill()
        # sshd leaves a command running when its client goes (no terminal, no SIGHUP): the
        # runner on the "board" would finish its --max_secs; this test's own are ended here.
        for pid in processes_running(str(python)):
            os.kill(int(pid), signal.SIGKILL)
    assert command.returncode == 130
    assert "interrupted: every device was stopped" in err and "Traceback" not in err
    assert not out.exists()
    # The local runner is gone; the SSH target removed its temp dir on the "board".
    assert all(str(remote_root) in cmdline for cmdline in left.values())
    assert list(remote_root.iterdir()) == []


def processes_running(marker):
    """{pid: command line} of the running processes whose command line mentions `marker`."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found[pid] = cmdline
    return found


class CrashingTarget:
    """A target whose process dies mid-run (as a native crash would take it)."""

    def run(self, graphs, settings):
        os.kill(os.getpid(), signal.SIGSEGV)


def test_a_worker_that_dies_costs_only_its_row(models, monkeypatch):
    from device_bench.targets import registry

    monkeypatch.setattr(registry, "_TARGETS", dict(registry._TARGETS))
    registry.register_target("crashing", CrashingTarget, "dies mid-run")
    result = benchmark_fleet(models["float"], ["local", "crashing"], num_runs=5, min_secs=0.0,
                             warmup_min_secs=0.0)
    assert [d.status for d in result.devices] == ["ok", "failed"]
    assert result.devices[1].error == "the worker process ended without a result (SIGSEGV)"


def test_fleet_file_yaml_with_own_graphs(models, tmp_path):
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text("devices:\n"
                          "  here:\n"
                          "    target: local\n"
                          "    num_threads: 1\n"
                          f"    graph: {os.path.basename(models['float'])}\n"
                          "  mcu:\n"
                          "    target: micro\n"
                          f"    graph: [{models['int8']}]\n")
    devices = load_fleet(str(fleet_file))
    assert devices[0] == Device("here", "local", {"num_threads": 1},
                                [str(tmp_path / os.path.basename(models["float"]))])
    assert devices[1].graphs == [models["int8"]]


@pytest.mark.parametrize("content, message", [
    ("devices: [local]", "'devices:' must map at least one device name"),
    ("boards: {}\ndevices: {a: {target: local}}", "unknown top-level key(s) boards"),
    ("devices: {a: {num_threads: 1}}", "device 'a': expected a mapping with a target"),
    ("devices: {'bad name': {target: local}}", "device name 'bad name'"),
    ("devices: {a: {target: ftp://x}}", "is not a target"),
    ("devices: {a: {target: local, num_run: 5}}", "unknown option(s) num_run; the local target"),
    ("devices: {a: {target: local, board: pico}}", "unknown option(s) board"),
    ("devices: {a: {target: local, num_runs: '5'}}", "num_runs must be an integer"),
    ("devices: {a: {target: local, num_runs: 0}}", "device 'a': --num_runs must be at least 1"),
    ("devices: {a: {target: micro, board: uno}}", "device 'a': unknown board 'uno'"),
    ("devices: {a: {target: local, graph: 5}}", "graph must be a .tflite path"),
    ("devices: {a: {target: local, graph: missing.tflite}}", "missing.tflite: cannot read it"),
    ("devices: {a: {target: local}\n", "not valid YAML"),
    pytest.param("[" * 5000, "nested more than 16 levels deep", id="deep"),
])
def test_bad_fleet_files_are_refused_before_any_device_runs(models, tmp_path, capsys, content,
                                                            message):
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(content)
    assert cli.main([f"--graph={models['float']}", f"--fleet={fleet_file}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("flags, message", [
    (["--target=local", "--target=local"], "device(s) local given twice"),
    (["--target=local", "--target=micro", "--ssh_key=k"], "key_filename applies to none of"),
    (["--target=local", "--target=micro", "--device_timeout=0"], "--device_timeout must be"),
    (["--device_timeout=5"], "are for several devices at once"),
])
def test_bad_fleet_flags_get_clear_errors(models, capsys, flags, message):
    assert cli.main([f"--graph={models['float']}", *flags]) == 2
    assert message in capsys.readouterr().err


def test_fleet_json_and_non_utf8_files(tmp_path):
    good = tmp_path / "fleet.json"
    good.write_text('{"devices": {"pi": {"target": "ssh://pi@raspberrypi.local"}}}')
    assert load_fleet(str(good)) == [Device("pi", "ssh://pi@raspberrypi.local")]
    bad = tmp_path / "bad.json"
    bad.write_text('{"devices": ')
    with pytest.raises(BenchError, match="not valid JSON"):
        load_fleet(str(bad))
    binary = tmp_path / "fleet.yaml"
    binary.write_bytes(b"devices:\xff")
    with pytest.raises(BenchError, match="not UTF-8"):
        load_fleet(str(binary))


class CuttableProxy:
    """A TCP relay from 127.0.0.1:port to `target_port` whose connections `cut()` drops, as a
    board that loses its network does."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

    @staticmethod
    def _relay(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self):
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.server.close()
        self.cut()


def test_a_connection_dropped_mid_run_is_that_devices_error_only(sshd, models, tmp_path):
    python = tmp_path / "python-fleet-drop"
    python.symlink_to(sys.executable)
    proxy = CuttableProxy(sshd.port)
    with open(sshd.known_hosts) as f:
        host_key = f.read().split(" ", 1)[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {host_key}")

    def cut_once_the_board_runs():
        deadline = time.monotonic() + 60
        while not processes_running(str(python)) and time.monotonic() < deadline:
            time.sleep(0.1)
        proxy.cut()

    cutter = threading.Thread(target=cut_once_the_board_runs, daemon=True)
    cutter.start()
    try:
        with pytest.warns(UserWarning, match="pi: .*could not remove the temp dir"):
            result = benchmark_fleet(models["float"], [
                Device("here", "local", {"min_secs": 0.0}),
                Device("pi", f"ssh://{sshd.user}@127.0.0.1:{proxy.port}", {
                    "known_hosts": str(known_hosts), "key_filename": sshd.client_key,
                    "remote_python": str(python)})], num_runs=10, min_secs=20, max_secs=30,
                warmup_min_secs=0)
    finally:
        proxy.close()
        for pid in processes_running(str(python)):  # sshd keeps the board's runner going
            os.kill(int(pid), signal.SIGKILL)
    here, pi = result.devices
    assert here.status == "ok" and here.result.models[0].latency.count >= 10
    assert pi.status == "failed" and "connection" in pi.error, pi.error


def test_a_script_without_a_main_guard_runs_once(models, tmp_path):
    """Workers are fresh Pythons: the caller's script is not re-run in them (as multiprocessing's
    spawn would), and a target class defined in that script is refused with a clear error."""
    script = tmp_path / "bench.py"
    script.write_text(
        "import device_bench\n"
        "print('script ran')\n"
        f"fleet = device_bench.benchmark_fleet({models['float']!r}, ['local'], num_runs=5,\n"
        "                                      min_secs=0, warmup_min_secs=0)\n"
        "print(fleet.devices[0].status)\n"
        "class MainTarget:\n"
        "    def run(self, graphs, settings):\n"
        "        raise AssertionError('never runs')\n"
        "device_bench.register_target('mine', MainTarget, 'a target in the script')\n"
        "try:\n"
        f"    device_bench.benchmark_fleet({models['float']!r}, ['mine'])\n"
        "except device_bench.BenchError as error:\n"
        "    print(error)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.stdout.splitlines()[:2] == ["script ran", "ok"], done.stderr
    assert "MainTarget is defined in __main__" in done.stdout


def test_recipe_benchmark_stage_runs_its_targets_as_a_fleet(models, tmp_path):
    """edgeprune's recipe stage (here because it needs these models): the targets run at once, a
    failing one fails the stage by name and the others' JSON files are still written."""
    import shutil

    from edgeprune.recipe.runner import RunContext
    from edgeprune.recipe.stages.benchmark import run_benchmark

    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(models["int8"], run / "model.tflite")
    recipe = {"benchmark": {"targets": [
        {"target": "local", "num_runs": 5, "min_secs": 0.0, "warmup_min_secs": 0.0},
        {"target": "micro", "board": "pico"},
        {"target": "ssh://me@127.0.0.1:1", "timeout": 2.0}]}}
    context = RunContext(recipe, run, {"finished": {"convert": {"outputs": {
        "model": "model.tflite"}}}})
    with pytest.raises(BenchError, match=r"^ssh://me@127.0.0.1:1 failed: .*cannot reach"):
        run_benchmark(context)
    assert sorted(os.listdir(run / "bench")) == ["local.json", "micro.json"]
    micro = json.loads((run / "bench" / "micro.json").read_text())
    assert micro["models"][0]["micro"]["fits"] is True


FLEET_YAML = """devices:
  pi:
    target: ssh://pi@raspberrypi.local:2222
    num_threads: 4
    known_hosts: /tmp/known_hosts
    timeout: 5
    input_shapes: {x: [1, 8]}
  here: {target: local, use_xnnpack: false, num_runs: 10}
  mcu:
    target: micro
    board: pico
"""


def test_fuzz_fleet_files_load_or_get_a_clear_error(models, tmp_path):
    """Seeded mutations of a fleet file (bytes swapped, dropped, repeated): each one loads and
    plans, or raises BenchError; never another exception."""
    import random

    from device_bench.fleet import _plan

    rng = random.Random(18)
    alphabet = b" :{}[],-\n#&*!|>'\"0123456789abcdefxyz\t\xff"
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(300):
        data = bytearray(FLEET_YAML.encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.randrange(3)
            if kind == 0:
                data[at] = rng.choice(alphabet)
            elif kind == 1:
                del data[at:at + rng.randint(1, 8)]
            else:
                data[at:at] = data[at:at + rng.randint(1, 16)]
        path = tmp_path / f"fleet{case}.{'json' if case % 5 == 0 else 'yaml'}"
        path.write_bytes(bytes(data) if case % 5 else json.dumps(
            {"devices": {"a": {"target": "local", "num_runs": case}}}).encode()[:rng.randint(
                1, 60)])
        try:
            _plan([models["float"]], load_fleet(str(path)), {})
            outcomes["loaded"] += 1
        except BenchError:
            outcomes["refused"] += 1
    assert outcomes["loaded"] >= 10 and outcomes["refused"] >= 100, outcomes
