"""A real SSH server in-process (asyncssh) for the SSH target's tests, where OpenSSH's is missing.

It speaks the SSH protocol on 127.0.0.1 with an ed25519 host key, lets in only the current user
with the authorized client key, runs each exec'd command line with the user's login shell (`shell
-c command`, in the home folder, with the small environment sshd gives), forwards stdin, stdout,
stderr and the exit status, and serves SFTP on the local file system. Unlike sshd it kills a
command whose channel closes while it runs, so that no test leaves a process behind.

The server runs on its own event loop in a daemon thread; `start()` returns once it listens.
"""

import asyncio
import os
import pwd
import signal
import threading

import asyncssh

_CHUNK = 1 << 16


def write_key(path):
    """A new ed25519 key pair at path (OpenSSH format, 0600) and path.pub; returns the public line.

    Replaces `ssh-keygen -t ed25519 -N ''` so the tests need no OpenSSH client either.
    """
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(path)
    os.chmod(path, 0o600)  # sshd refuses a host key file that others can read
    public = key.export_public_key().decode().strip()
    with open(path + ".pub", "w") as f:
        f.write(public + "\n")
    return public


class InProcessSshd:
    """start() -> listening on 127.0.0.1:port; stop() closes connections and kills commands."""

    def __init__(self, host_key, authorized_keys, user):
        self.host_key, self.authorized_keys, self.user = host_key, authorized_keys, user
        self.port = None
        self._loop = self._thread = self._acceptor = None
        self._connections, self._commands = set(), set()

    def start(self, timeout=30):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncssh-sshd",
                                        daemon=True)
        self._thread.start()
        self._acceptor = self._call(self._listen(), timeout)
        self.port = self._acceptor.get_port()
        return self

    def stop(self, timeout=30):
        if self._loop is None:
            return
        try:
            self._call(self._close(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _call(self, coroutine, timeout):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _listen(self):
        return await asyncssh.create_server(
            self._server_for_connection, "127.0.0.1", 0,
            server_host_keys=[asyncssh.read_private_key(self.host_key)],
            process_factory=self._run_command, sftp_factory=True, allow_scp=False,
            encoding=None,  # bytes through, as sshd does
            agent_forwarding=False, x11_forwarding=False)

    async def _close(self):
        self._acceptor.close()
        await self._acceptor.wait_closed()
        for connection in list(self._connections):
            connection.close()
        for process in list(self._commands):
            if process.returncode is None:
                _kill(process)
        for process in list(self._commands):
            await process.wait()

    def _server_for_connection(self):
        return _Server(self)

    async def _run_command(self, channel):
        """One exec request: the command line through the user's shell, as sshd runs it."""
        if channel.command is None:
            channel.stderr.write(b"this test server runs commands only (no interactive shell)\n")
            channel.exit(1)
            return
        account = pwd.getpwnam(self.user)
        shell = account.pw_shell or "/bin/sh"
        environment = {"HOME": account.pw_dir, "USER": self.user, "LOGNAME": self.user,
                       "SHELL": shell, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/games"}
        process = await asyncio.create_subprocess_exec(
            shell, "-c", channel.command, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=account.pw_dir if os.path.isdir(account.pw_dir) else "/", env=environment,
            start_new_session=True)  # its own process group, so _kill reaches its children too
        self._commands.add(process)
        feeding = asyncio.ensure_future(_feed(channel.stdin, process.stdin))
        finished = asyncio.ensure_future(asyncio.gather(
            _forward(process.stdout, channel.stdout), _forward(process.stderr, channel.stderr),
            process.wait()))
        closed = asyncio.ensure_future(channel.wait_closed())
        try:
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            if finished.done():
                channel.exit(process.returncode)
        finally:
            feeding.cancel()
            if process.returncode is None:  # the client went away (or the server stops)
                _kill(process)
                await process.wait()
            finished.cancel()
            closed.cancel()
            self._commands.discard(process)


class _Server(asyncssh.SSHServer):
    """Public key login for the current user only, against the authorized_keys file."""

    def __init__(self, owner):
        self._owner, self._connection = owner, None

    def connection_made(self, conn):
        self._connection = conn
        self._owner._connections.add(conn)

    def connection_lost(self, exc):
        self._owner._connections.discard(self._connection)

    def begin_auth(self, username):
        if username == self._owner.user:
            self._connection.set_authorized_keys(self._owner.authorized_keys)
        return True  # authentication is required; other users have no key that works

    def password_auth_supported(self):
        return False


async def _feed(reader, pipe):
    """The channel's stdin into the command's, then EOF."""
    try:
        while data := await reader.read(_CHUNK):
            pipe.write(data)
            await pipe.drain()
    except (OSError, asyncssh.Error):  # the command closed its stdin, or the channel went away
        pass
    finally:
        pipe.close()


async def _forward(pipe, writer):
    """The command's stdout or stderr onto the channel, until the command closes it."""
    while data := await pipe.read(_CHUNK):
        try:
            writer.write(data)
            await writer.drain()
        except (OSError, asyncssh.Error):  # the channel closed: drain the pipe regardless
            pass


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
