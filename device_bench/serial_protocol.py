"""Line protocol for a benchmark sketch on a real microcontroller, and its reader.

The board prints plain ASCII lines on its serial port (any baud rate; lines end in \\n or \\r\\n).
Lines that do not start with "DB1 " are the sketch's own prints and are ignored:

    DB1 BEGIN model=kws_int8 arena=23456 runs=50   start; model= required, arena= (bytes,
                                                   from arena_used_bytes()) and runs= optional
    DB1 RUN 0 10234                                one timed inference: index, microseconds
    DB1 RUN 1 10198                                indices count up from 0 without gaps
    DB1 END                                        all runs printed
    DB1 ERROR AllocateTensors failed               the sketch failed; the text is shown

A sketch prints it with, for example (Arduino):

    Serial.print("DB1 RUN "); Serial.print(i); Serial.print(' '); Serial.println(micros() - t0);

>>> parser = ProtocolParser()
>>> for line in ["boot ok", "DB1 BEGIN model=kws arena=2048", "DB1 RUN 0 900", "DB1 END"]:
...     parser.feed(line)
>>> parser.done, parser.samples_us, parser.arena_bytes
(True, [900.0], 2048)
"""

import time

from device_bench.errors import BenchError

PREFIX = "DB1 "


class ProtocolParser:
    """Feeds lines one at a time; `done` once END arrives. Raises BenchError on ERROR or a gap."""

    def __init__(self, source="board"):
        self.source = source
        self.model = None
        self.arena_bytes = None
        self.expected_runs = None
        self.samples_us = []
        self.done = False

    def feed(self, line):
        line = line.strip()
        if not line.startswith(PREFIX):
            return
        kind, _, rest = line[len(PREFIX):].partition(" ")
        handler = {"BEGIN": self._begin, "RUN": self._run, "END": self._end,
                   "ERROR": self._error}.get(kind)
        if handler is None:
            raise BenchError(f"{self.source}: unknown protocol line {line!r}; expected "
                             "DB1 BEGIN/RUN/END/ERROR (see device_bench/serial_protocol.py)")
        handler(rest, line)

    def _begin(self, rest, line):
        fields = dict(item.partition("=")[::2] for item in rest.split())
        if "model" not in fields:
            raise BenchError(f"{self.source}: {line!r} lacks model=NAME")
        self.model = fields["model"]
        self.arena_bytes = self._int(fields.get("arena"), line)
        self.expected_runs = self._int(fields.get("runs"), line)
        self.samples_us, self.done = [], False

    def _run(self, rest, line):
        if self.model is None:
            raise BenchError(f"{self.source}: {line!r} arrived before DB1 BEGIN; reset the board "
                             "so it starts the benchmark from the beginning")
        parts = rest.split()
        if len(parts) != 2:
            raise BenchError(f"{self.source}: {line!r} should be 'DB1 RUN <index> <microseconds>'")
        index = self._int(parts[0], line)
        if index != len(self.samples_us):
            raise BenchError(f"{self.source}: expected run {len(self.samples_us)}, got run {index}: "
                             "lines were lost (serial buffer overflow?); lower the print rate or "
                             "raise the baud rate")
        try:
            self.samples_us.append(float(parts[1]))
        except ValueError:
            raise BenchError(f"{self.source}: {line!r}: {parts[1]!r} is not a number of "
                             "microseconds") from None

    def _end(self, rest, line):
        if self.model is None:
            raise BenchError(f"{self.source}: DB1 END without DB1 BEGIN")
        if self.expected_runs is not None and self.expected_runs != len(self.samples_us):
            raise BenchError(f"{self.source}: BEGIN announced {self.expected_runs} runs but "
                             f"{len(self.samples_us)} arrived")
        if not self.samples_us:
            raise BenchError(f"{self.source}: the benchmark ended without any DB1 RUN line")
        self.done = True

    def _error(self, rest, line):
        raise BenchError(f"{self.source}: the board reported an error: {rest}")

    def _int(self, text, line):
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise BenchError(f"{self.source}: {line!r}: {text!r} is not an integer") from None


def read_port(port, baudrate=115200, timeout=60.0):
    """Reads the protocol from a serial port until DB1 END; returns the finished ProtocolParser."""
    try:
        import serial  # pyserial, only needed for a real board
    except ImportError:
        raise BenchError("reading a board needs pyserial: pip install pyserial") from None
    parser = ProtocolParser(source=port)
    deadline = time.monotonic() + timeout
    try:
        with serial.Serial(port, baudrate=baudrate, timeout=0.2) as connection:
            pending = b""  # readline() returns what it has when its timeout strikes mid-line
            while not parser.done:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{port}: no DB1 END within {timeout:g} s ({len(parser.samples_us)} runs "
                        f"read{'' if parser.model else ', no DB1 BEGIN seen'}); is the benchmark "
                        f"sketch running, and is {baudrate} its baud rate?")
                pending += connection.readline()
                if pending.endswith(b"\n"):
                    parser.feed(pending.decode("ascii", errors="replace"))
                    pending = b""
    except serial.SerialException as error:
        raise BenchError(f"{port}: cannot open or read the serial port ({error}); check the "
                         "port name (ls /dev/tty*) and that no serial monitor holds it") from None
    return parser
