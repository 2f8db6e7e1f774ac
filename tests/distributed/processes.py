"""Starting the worker processes of a distributed test: free ports on 127.0.0.1, a time limit,
every child killed whatever happens, and their output in the failure message."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count):
    """`count` ports free on 127.0.0.1 now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def run_workers(script, arguments, envs, log_dir, timeout=240):
    """Runs `python script *arguments[i]` (`script` a path, or a list such as `["-m", module]`)
    with `envs[i]` added to the environment, all at once;
    returns their exit codes once all have ended, or once one has failed (the others are then
    killed). On timeout every child (and its children) is killed and the test fails with each
    child's last output."""
    env_base = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), TF_CPP_MIN_LOG_LEVEL="3")
    script = list(script) if isinstance(script, (list, tuple)) else [str(script)]
    children = []
    with contextlib.ExitStack() as logs:
        try:
            for index, (args, env) in enumerate(zip(arguments, envs)):
                log = logs.enter_context(open(Path(log_dir) / f"worker{index}.log", "w"))
                children.append(subprocess.Popen(
                    [sys.executable, *script, *map(str, args)], cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, env={**env_base, **env}, start_new_session=True))
            deadline = time.monotonic() + timeout
            # A worker that fails leaves the others waiting for it in a collective: stop them.
            while any(child.poll() is None for child in children) and not any(
                    child.returncode not in (None, 0, -signal.SIGKILL) for child in children):
                if time.monotonic() > deadline:
                    raise AssertionError(f"workers still running after {timeout} s:\n"
                                         + outputs(log_dir, len(children)))
                time.sleep(0.2)
            return [child.returncode for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()


def outputs(log_dir, count):
    """The last lines each worker wrote, for failure messages."""
    return "\n".join(f"--- worker {i}:\n" + "\n".join(
        (Path(log_dir) / f"worker{i}.log").read_text().splitlines()[-30:]) for i in range(count))
