"""A fleet benchmark's wall time against the same devices benchmarked one at a time.

Each round runs `device-bench` once with every device (a fleet file) and, in alternating order,
once per device one after another (the sum of one-at-a-time runs); both in fresh processes, as a
user would type them. Two fleets:

1. `local`, `ssh://` and `micro`: local and micro compute on this computer's CPUs, so the fleet
   runs them one after another and only the SSH device runs beside them.
2. three `ssh://` devices: three lanes at once.

The SSH "boards" are the tests' in-process SSH server on 127.0.0.1 (tests/device_bench/
ssh_server.py), so every device here computes on this machine's own cores: the wall-time ratio
shows what the fleet's scheduling saves, and the p50 columns show what devices sharing cores do to
each other's figures (real boards each have their own CPU).

    python benchmarks/fleet.py [--rounds 3] [--min_secs 2]

TensorFlow is used only to build the int8 .tflite file.
"""

import argparse
import contextlib
import getpass
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_model(folder):
    """A small int8 CNN (32x32x1 input, two convolutions, a dense head): runs on TFLite Micro."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 1), batch_size=1), keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).normal(size=(1, 32, 32, 1)).astype("float32")]
        for i in range(20))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        data = converter.convert()
    path = os.path.join(folder, "cnn_int8.tflite")
    with open(path, "wb") as f:
        f.write(data)
    return path


def ssh_server(folder):
    """The tests' in-process SSH server on 127.0.0.1, its client key and known_hosts."""
    from tests.device_bench import ssh_server as server

    host_key, client_key = os.path.join(folder, "host_key"), os.path.join(folder, "client_key")
    host_public = server.write_key(host_key)
    authorized = os.path.join(folder, "authorized_keys")
    with open(authorized, "w") as f:
        f.write(server.write_key(client_key) + "\n")
    sshd = server.InProcessSshd(host_key, authorized, getpass.getuser()).start()
    known_hosts = os.path.join(folder, "known_hosts")
    with open(known_hosts, "w") as f:
        f.write(f"[127.0.0.1]:{sshd.port} {host_public}\n")
    return sshd, {"target": f"ssh://{getpass.getuser()}@127.0.0.1:{sshd.port}",
                  "key_filename": client_key, "known_hosts": known_hosts,
                  "remote_python": sys.executable}


def device_bench(flags, out):
    """Wall seconds of one `python -m device_bench` command, and its JSON result."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "device_bench", *flags, f"--output_json={out}"],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"device-bench {' '.join(flags)} failed:\n{done.stdout}\n{done.stderr}")
    with open(out) as f:
        return seconds, json.load(f)


def p50_ms(result):
    latency = result["models"][0]["latency"]
    return latency["p50_us"] / 1000 if latency else None


def compare(name, devices, graph, settings, rounds, folder):
    """Interleaved rounds (fleet first, then one at a time first, ...); prints the medians."""
    fleet_file = os.path.join(folder, f"{name}.json")
    with open(fleet_file, "w") as f:
        json.dump({"devices": devices}, f)
    out = os.path.join(folder, "result.json")
    fleet_s, alone_s, fleet_p50, alone_p50 = [], [], {d: [] for d in devices}, {
        d: [] for d in devices}

    def run_fleet():
        seconds, data = device_bench([f"--graph={graph}", f"--fleet={fleet_file}", *settings],
                                     out)
        fleet_s.append(seconds)
        for device in data["devices"]:
            fleet_p50[device["name"]].append(p50_ms(device["result"]))

    def run_alone():
        total = 0.0
        for device, entry in devices.items():
            flags = [f"--target={entry['target']}"] + [
                f"--{ {'key_filename': 'ssh_key', 'known_hosts': 'ssh_known_hosts'}.get(k, k)}={v}"
                for k, v in entry.items() if k != "target"]
            seconds, data = device_bench([f"--graph={graph}", *flags, *settings], out)
            total += seconds
            alone_p50[device].append(p50_ms(data))
        alone_s.append(total)

    for index in range(rounds):
        for step in ((run_fleet, run_alone) if index % 2 == 0 else (run_alone, run_fleet)):
            step()
    fleet, alone = statistics.median(fleet_s), statistics.median(alone_s)
    print(f"\n{name}: {len(devices)} devices, {rounds} rounds, medians")
    print(f"  fleet (one command)          {fleet:6.1f} s   runs: "
          + ", ".join(f"{s:.1f}" for s in fleet_s))
    print(f"  one at a time (sum of runs)  {alone:6.1f} s   runs: "
          + ", ".join(f"{s:.1f}" for s in alone_s))
    print(f"  one at a time / fleet        {alone / fleet:6.2f}x")
    for device in devices:
        if fleet_p50[device][0] is not None:
            print(f"  {device}: p50 {statistics.median(alone_p50[device]):.3f} ms alone, "
                  f"{statistics.median(fleet_p50[device]):.3f} ms in the fleet")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min_secs", type=float, default=2.0)
    args = parser.parse_args()
    settings = ["--num_threads=1", "--num_runs=50", f"--min_secs={args.min_secs}",
                "--warmup_min_secs=0.2"]
    with tempfile.TemporaryDirectory() as folder:
        graph = build_model(folder)
        sshd, ssh = ssh_server(folder)
        try:
            print(f"cpus: {os.cpu_count()}, model: {os.path.getsize(graph)} bytes int8 CNN, "
                  f"settings: {' '.join(settings)}")
            compare("local + ssh + micro", {
                "here": {"target": "local"}, "pi": ssh,
                "mcu": {"target": "micro", "board": "nano33ble"}}, graph, settings, args.rounds,
                folder)
            compare("three ssh devices", {f"pi{i}": ssh for i in (1, 2, 3)}, graph, settings,
                    args.rounds, folder)
        finally:
            sshd.stop()


if __name__ == "__main__":
    main()
