"""Where a run ran: date, library versions, CPU. Recorded by the baseline stage in `state.json` so
the report states it; read without importing TensorFlow.

>>> sorted(versions())
['ai-edge-litert', 'edgeprune', 'keras', 'tensorflow']
"""

import datetime
import os
import platform
import sys

PACKAGES = ("edgeprune", "keras", "tensorflow", "ai-edge-litert")


def versions():
    """`{package: version or None}` of edgeprune and the libraries it runs on."""
    from importlib import metadata

    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model():
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment():
    """A JSON-ready record of this machine and moment."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": versions(), "python": ".".join(map(str, sys.version_info[:3])),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system()}
