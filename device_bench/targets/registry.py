"""The one table of benchmark targets: each entry's --target scheme, its class and its options.

Everything that names targets is generated from it: `parse_target` and its error message, the
option check of `make_target`, the CLI's `--target` help and per-target flags, and the JSON
schema a recipe's `benchmark.targets` entries are checked with.

>>> target = Target("echo", "my_bench:EchoTarget", "prints the models", address="NAME",
...                 options=(TargetOption("greeting", default="hi", help="what to print"),))
>>> target.usage, target.pattern
('echo://NAME', 'echo://.+')
>>> target.options[0].cli_help
'what to print (default hi)'
"""

import importlib
import re
from dataclasses import dataclass, field

from device_bench.errors import BenchError

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SCHEME = re.compile(r"^[a-z][a-z0-9_]*$")
_TARGETS = {}  # scheme -> Target, in registration order (the order help and errors list them)


@dataclass(frozen=True)
class TargetOption:
    """A keyword argument of a target class, as `benchmark()` takes it and a CLI flag sets it.

    `type` is str, int, float or bool. A bool option's flag takes no value: it switches the option
    away from its default (--ssh_no_host_key_check sets check_host_key=False), so its `help`
    describes the flag. `flag` is the CLI flag's name where it differs from `name`. `default` is
    what the class uses when the option is not given (shown in --help). `limits` are extra JSON
    schema keywords for recipes, e.g. {"exclusiveMinimum": 0}.
    """
    name: str
    type: type = str
    default: object = None
    help: str = ""
    flag: str | None = None
    limits: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.type not in _JSON_TYPES:
            raise ValueError(f"option {self.name}: type must be one of str, int, float, bool; "
                             f"got {self.type!r}")

    @property
    def flag_name(self):
        return self.flag or self.name

    @property
    def cli_help(self):
        if self.default is None or self.type is bool:
            return self.help
        shown = f"{self.default:g}" if isinstance(self.default, float) else self.default
        return f"{self.help} (default {shown})"

    def json_schema(self):
        return {"type": _JSON_TYPES[self.type], **self.limits}


@dataclass(frozen=True)
class Target:
    """A --target kind: `scheme` alone (local, micro) or `scheme://ADDRESS` when `address` names
    the address's form (e.g. "user@host[:port]"), with `address_help` saying where to find it.

    `target_class` is the class or "module:Class", imported on first use so that a target's
    dependencies (paramiko, pyserial, tflite-micro) load only when it runs. It is called as
    `target_class(address, **options)` (without address for a bare scheme) and its instances have
    `run(graphs, settings)` returning a schema.BenchmarkResult.

    `on_host` marks targets that compute on this computer's CPUs (local, micro): a fleet runs
    those one after another, so that they do not skew each other's figures.
    """
    scheme: str
    target_class: object
    description: str
    address: str | None = None
    address_help: str | None = None
    options: tuple = ()
    on_host: bool = False

    @property
    def usage(self):
        """How the --target value is written, e.g. 'adb://SERIAL'."""
        return f"{self.scheme}://{self.address}" if self.address else self.scheme

    @property
    def usage_with_help(self):
        return f"{self.usage} ({self.address_help})" if self.address_help else self.usage

    @property
    def pattern(self):
        """A regular expression for the whole --target value."""
        return re.escape(self.scheme) + ("://.+" if self.address else "")

    def load_class(self):
        if not isinstance(self.target_class, str):
            return self.target_class
        module, _, name = self.target_class.partition(":")
        return getattr(importlib.import_module(module), name)

    def create(self, address, options):
        accepted = [option.name for option in self.options]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise BenchError(f"option(s) {', '.join(unknown)} do not apply to the {self.scheme} "
                             f"target; it accepts: {', '.join(accepted) or 'no options'}"
                             + "".join(_where_it_applies(name) for name in unknown))
        target_class = self.load_class()
        return target_class(address, **options) if self.address else target_class(**options)

    def accepts(self, option_name):
        return any(option.name == option_name for option in self.options)


def register_target(scheme, target_class, description, address=None, address_help=None,
                    options=(), on_host=False):
    """Adds a target to `--target`, `benchmark(target=...)` and the CLI flags; returns it.

    A flag shared with another target (like --timeout or --board) must set the same option name
    with the same type, since the CLI has one flag for both. `on_host=True` for a target that
    computes on this computer's CPUs (a fleet runs those one after another).
    """
    if not _SCHEME.match(scheme):
        raise ValueError(f"target scheme {scheme!r}: use lower-case letters, digits and _")
    if scheme in _TARGETS:
        raise ValueError(f"target scheme {scheme!r} is already registered")
    target = Target(scheme, target_class, description, address, address_help, tuple(options),
                    on_host)
    for option in target.options:
        for other_scheme, other in flag_table().get(option.flag_name, []):
            if (other.name, other.type) != (option.name, option.type):
                raise ValueError(
                    f"--{option.flag_name} of the {scheme} target sets {option.name} "
                    f"({option.type.__name__}) but the {other_scheme} target's sets {other.name} "
                    f"({other.type.__name__}); give the option its own flag")
    _TARGETS[scheme] = target
    return target


def targets():
    """Every registered Target, in registration order."""
    return list(_TARGETS.values())


def find(scheme):
    return _TARGETS[scheme]


def parse_target(spec):
    """Splits a --target value into (scheme, address); address is "" for a bare scheme."""
    spec = (spec or "").strip()
    scheme, separator, address = spec.partition("://")
    target = _TARGETS.get(scheme)
    if target and bool(target.address) == bool(separator) and (address or not separator):
        return scheme, address
    raise BenchError(f"--target={spec!r} is not a target; use " + _or_list(
        [t.usage_with_help for t in targets()]))


def usage_list():
    """'local, ssh://user@host[:port], ... or serial://PORT': every target's --target form."""
    return _or_list([t.usage for t in targets()])


def target_pattern():
    """A regular expression matching every valid --target value."""
    return "^(" + "|".join(t.pattern for t in targets()) + ")$"


def flag_table():
    """{flag name: [(scheme, TargetOption), ...]} over every target, in registration order."""
    table = {}
    for target in targets():
        for option in target.options:
            table.setdefault(option.flag_name, []).append((target.scheme, option))
    return table


def _where_it_applies(option_name):
    """'. board is for --target=micro or serial://PORT', or '' when no target takes it."""
    owners = [t.usage for t in targets() if option_name in {o.name for o in t.options}]
    return f". {option_name} is for --target={_or_list(owners)}" if owners else ""


def _or_list(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]

