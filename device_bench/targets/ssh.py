"""The `ssh://user@host[:port]` target: a Raspberry Pi or any Linux board with Python.

It copies runner.py and the models into a fresh remote temp dir, runs runner.py with the board's
own Python and ai-edge-litert, reads back the same JSON as the local target, and removes the temp
dir whatever happens. Host keys are checked against known_hosts unless check_host_key=False.
Every remote path goes through shlex.quote.

>>> SshTarget("pi@raspberrypi.local").port
22
"""

import json
import os
import posixpath
import shlex
import socket
import warnings

from device_bench import results, runner
from device_bench.errors import BenchError
from device_bench.modelfile import read_tflite
from device_bench.targets import runner_process
from device_bench.targets.local import LOAD_ALLOWANCE_SECS

_COMMAND_NOT_FOUND = 127
_NO_EXIT_STATUS = -1  # paramiko's exit status of a channel closed without one


def parse_address(address):
    """'user@host:port' -> (user or None, host, port)."""
    user, _, hostport = address.rpartition("@")
    host, port = hostport, 22
    if hostport.startswith("["):                      # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] or 22
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    try:
        port = int(port)
    except ValueError:
        raise BenchError(f"ssh://{address}: port {port!r} is not a number") from None
    if not host:
        raise BenchError(f"ssh://{address}: no host name; use ssh://user@host[:port]")
    return user or None, host, port


def remote_command(remote_python):
    """--remote_python (a path, or a command with arguments such as `nice -n 5 python3`) re-quoted
    for the remote shell; checked before connecting, so a typo costs no SSH session."""
    try:
        parts = shlex.split(remote_python or "")  # never None: shlex would read stdin
    except ValueError as error:
        raise BenchError(f"--remote_python={remote_python!r} cannot be split into a command "
                         f"({error}); balance the quotes or quote the whole path") from None
    if not parts:
        raise BenchError("--remote_python is empty; give the board's Python, e.g. python3")
    return " ".join(shlex.quote(part) for part in parts)


class HostKeyNotChecked(UserWarning):
    """Warned on every connection made without checking the board's host key."""


warnings.filterwarnings("always", category=HostKeyNotChecked)


class SshTarget:
    def __init__(self, address, remote_python="python3", known_hosts=None, check_host_key=True,
                 key_filename=None, timeout=10.0, remote_temp_root="/tmp"):
        self.user, self.host, self.port = parse_address(address)
        self.name = f"ssh://{address}"
        self.remote_python = remote_python
        self.known_hosts = known_hosts and os.path.expanduser(known_hosts)
        self.check_host_key = check_host_key
        self.key_filename = key_filename and os.path.expanduser(key_filename)
        self.timeout = timeout
        self.remote_temp_root = remote_temp_root

    @property
    def where(self):
        return f"{self.host}:{self.port}" if self.port != 22 else self.host

    def run(self, graphs, settings):
        remote_command(self.remote_python)
        for graph in graphs:  # checked before connecting: a bad file costs no SSH session
            read_tflite(graph)
        with self.session() as session:
            return session.run(graphs, settings)

    def session(self):
        """An `SshSession`: one connection and remote temp dir for many runs (close it, or use
        `with`)."""
        return SshSession(self)

    def _connect(self):
        import paramiko  # only this target needs it

        if self.key_filename and not os.path.isfile(self.key_filename):
            raise BenchError(f"SSH key file {self.key_filename} not found; check --ssh_key")
        client = paramiko.SSHClient()
        if self.check_host_key:
            self._load_known_hosts(client)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            warnings.warn(f"{self.where}: the host key is NOT checked (--ssh_no_host_key_check, "
                          "check_host_key=False): anyone between here and the board can pose as "
                          "it. Use this on a network you trust only.", HostKeyNotChecked,
                          stacklevel=2)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(self.host, self.port, username=self.user,
                           key_filename=self.key_filename, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout)
        except paramiko.BadHostKeyException:
            raise BenchError(
                f"{self.where}: the host key differs from the one in known_hosts (the board was "
                "re-installed, or someone is in the middle); check it, then remove the old key "
                f"with: ssh-keygen -R {self._known_hosts_name()}") from None
        except paramiko.AuthenticationException as error:
            raise BenchError(f"{self.where}: login as {self.user or 'the current user'} failed "
                             f"({error}); pass --ssh_key=PRIVATE_KEY or add your key to the "
                             "board's ~/.ssh/authorized_keys") from None
        except paramiko.SSHException as error:
            if "known_hosts" in str(error):
                raise BenchError(self._unknown_host_message()) from None
            # paramiko reports a handshake cut short by the timeout in either of these ways.
            if "banner" in str(error) or "No existing session" in str(error):
                raise BenchError(f"{self.where}: no SSH answer within {self.timeout:g} s; is an "
                                 f"SSH server listening on port {self.port}?") from None
            raise BenchError(f"{self.where}: SSH failed ({error})") from None
        except (socket.timeout, TimeoutError):
            raise BenchError(f"{self.where}: timed out after {self.timeout:g} s connecting; "
                             "is the board on and on this network?") from None
        except OSError as error:
            raise BenchError(f"{self.where}: cannot reach the board ({error.strerror or error}); "
                             "check the host name, the port and that sshd runs") from None
        return client

    def _known_hosts_name(self):
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _load_known_hosts(self, client):
        if self.known_hosts is None:
            client.load_system_host_keys()
        elif os.path.isfile(self.known_hosts):
            client.load_host_keys(self.known_hosts)
        else:
            raise BenchError(f"known_hosts file {self.known_hosts} not found; pass an existing "
                             "file to --ssh_known_hosts")

    def _unknown_host_message(self):
        where = self.known_hosts or "~/.ssh/known_hosts"
        port = f"-p {self.port} " if self.port != 22 else ""
        return (f"{self.where}: host key not in {where}, so the board's identity cannot be "
                f"checked. Add it after checking its fingerprint: ssh-keyscan {port}{self.host} >> "
                f"{where} (or log in once with ssh), or pass --ssh_no_host_key_check "
                "(check_host_key=False) on a network you trust")

    def _exec(self, client, command, timeout, stdin_text=None):
        """(exit status, stdout, stderr) of a remote shell command, within `timeout` seconds."""
        import paramiko

        try:
            stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
            if stdin_text is not None:
                stdin.write(stdin_text)
            stdin.channel.shutdown_write()
            out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
            status = stdout.channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            raise BenchError(f"{self.where}: `{command[:60]}` did not finish within {timeout:g} s; "
                             "lower --max_secs or check the board") from None
        except (paramiko.SSHException, EOFError, OSError) as error:  # "Socket is closed", ...
            raise BenchError(self._dropped(f"`{command[:60]}` ran", error)) from None
        if status == _NO_EXIT_STATUS and not client.get_transport().is_active():
            raise BenchError(self._dropped(f"`{command[:60]}` ran"))
        return status, out, err

    def _dropped(self, doing, error=None):
        cause = f" ({error})" if error else ""
        return (f"{self.where}: the SSH connection dropped while {doing}{cause}; check the "
                "board's network and power, then run again")

    def _make_temp_dir(self, client):
        template = posixpath.join(self.remote_temp_root, "device_bench.XXXXXXXX")
        status, out, err = self._exec(client, f"mktemp -d {shlex.quote(template)}", self.timeout)
        if status != 0 or not out.strip():
            raise BenchError(f"{self.where}: cannot create a temp dir with mktemp -d: {err.strip()}")
        return out.strip()

    def _remove_temp_dir(self, client, tmp):
        """Best effort: a failed clean-up warns rather than hide the error that got us here."""
        try:
            self._exec(client, f"rm -rf -- {shlex.quote(tmp)}", self.timeout)
        except Exception as error:  # the connection may be gone already
            warnings.warn(f"{self.where}: could not remove the temp dir {tmp}: {error}")

    def _upload(self, client, tmp, graphs, prefix=""):
        remote = [posixpath.join(tmp, f"{prefix}{index}_{os.path.basename(graph)}")
                  for index, graph in enumerate(graphs)]
        self._put(client, zip(graphs, remote), "the models were copied")
        return remote

    def _put(self, client, files, doing):
        """Copies each `(local, remote)` of `files` to the board over SFTP."""
        import paramiko

        try:
            with client.open_sftp() as sftp:
                for local, remote in files:
                    sftp.put(local, remote)
        except (paramiko.SSHException, EOFError) as error:
            raise BenchError(self._dropped(doing, error)) from None
        except OSError as error:  # the board refused a file (disk full), or the socket closed
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise BenchError(self._dropped(doing, error)) from None
            raise BenchError(f"{self.where}: copying to the board failed: {error}") from None

    def _run_runner(self, client, tmp, python, config, graphs, timeout):
        command = f"{python} {shlex.quote(posixpath.join(tmp, 'runner.py'))}"
        status, out, err = self._exec(client, command, timeout, json.dumps(config))
        if status == _COMMAND_NOT_FOUND:
            raise BenchError(f"{self.where}: {self.remote_python!r} not found on the board "
                             f"({err.strip()}); pass --remote_python=/path/to/python3")
        return runner_process.decode(
            status, out, err, self.where, graphs,
            missing_dependency_hint=" (on the board; or point --remote_python at a Python that "
                                    "has ai-edge-litert and numpy)")


class SshSession:
    """One SSH connection, one remote temp dir and one copy of runner.py, reused by every `run`.

    Each run uploads its models into the temp dir; `close()` removes the temp dir and closes the
    connection. Measuring many small models (a latency model) this way
    costs one SSH handshake, not one per model.

    >>> with SshTarget("pi@raspberrypi.local").session() as session:  # doctest: +SKIP
    ...     first, second = session.run(["a.tflite"], settings), session.run(["b.tflite"], settings)
    """

    def __init__(self, target):
        self.target = target
        self._python = remote_command(target.remote_python)
        self._runs = 0
        self.client = target._connect()
        try:
            self.tmp = target._make_temp_dir(self.client)
        except BaseException:
            self.client.close()
            raise
        try:
            target._put(self.client, [(runner.__file__, posixpath.join(self.tmp, "runner.py"))],
                        "runner.py was copied")
        except BaseException:
            self.close()
            raise

    def run(self, graphs, settings):
        for graph in graphs:
            read_tflite(graph)
        target = self.target
        self._runs += 1  # each run's models get their own names; close() removes them all
        remote_graphs = target._upload(self.client, self.tmp, graphs, prefix=f"{self._runs}_")
        raw = target._run_runner(self.client, self.tmp, self._python,
                                 settings.runner_config(remote_graphs), graphs,
                                 settings.max_secs + LOAD_ALLOWANCE_SECS * len(graphs))
        return results.from_runner(raw, target.name, settings, list(graphs))

    def close(self):
        try:
            self.target._remove_temp_dir(self.client, self.tmp)
        finally:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
