"""YAML files of device_bench (boards, fleets), read with bounds: pyyaml's safe loader, stopped
past MAX_DEPTH levels of nesting or MAX_VALUES values, so that no file makes it work for long.

pyyaml is imported only here and only when such a file is read (`pip install pyyaml`).

>>> parse_yaml("devices: {pi: {target: local}}", "fleet file f.yaml")
{'devices': {'pi': {'target': 'local'}}}
>>> parse_yaml("[" * 100, "fleet file f.yaml")
Traceback (most recent call last):
...
device_bench.errors.BenchError: fleet file f.yaml: nested more than 16 levels deep
"""

from device_bench.errors import BenchError

MAX_DEPTH = 16        # a fleet file nests 4 levels (devices, name, option, shape)
MAX_VALUES = 10_000   # keys and values; a fleet of 64 devices has a few hundred


class _TooLarge(Exception):
    pass


def _bounded_loader():
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = values = 0

        def compose_node(self, parent, index):
            self.depth += 1
            self.values += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _TooLarge(f"nested more than {MAX_DEPTH} levels deep")
                if self.values > MAX_VALUES:
                    raise _TooLarge(f"more than {MAX_VALUES} values")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def parse_yaml(text, where, without_pyyaml=""):
    """The data of the YAML `text`; BenchError starting with `where` when it cannot be read.
    `without_pyyaml` is added to the error where pyyaml is missing (another way to give it)."""
    try:
        import yaml
    except ImportError:
        raise BenchError(f"{where}: reading YAML needs pyyaml (pip install pyyaml)"
                         f"{without_pyyaml}") from None
    loader = _bounded_loader()(text)
    try:
        return loader.get_single_data()
    except _TooLarge as error:
        raise BenchError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise BenchError(f"{where}: not valid YAML ({error})") from None
    finally:
        loader.dispose()
