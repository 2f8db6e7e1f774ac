"""Where a benchmark runs: `local`, `ssh://user@host[:port]`, `adb://SERIAL`, `micro` or
`serial://PORT` (a real microcontroller running the benchmark sketch).

>>> parse_target("ssh://pi@raspberrypi.local:2222")
('ssh', 'pi@raspberrypi.local:2222')
"""

from device_bench.errors import BenchError

def parse_target(spec):
    """Splits a --target value into (kind, address); address is "" for local and micro."""
    spec = (spec or "").strip()
    if spec in ("local", "micro"):
        return spec, ""
    for kind in ("ssh", "adb", "serial"):
        prefix = kind + "://"
        if spec.startswith(prefix):
            if not spec[len(prefix):]:
                break
            return kind, spec[len(prefix):]
    raise BenchError(f"--target={spec!r} is not a target; use local, micro, "
                     "ssh://user@host[:port], adb://SERIAL (see `adb devices`) or serial://PORT")
