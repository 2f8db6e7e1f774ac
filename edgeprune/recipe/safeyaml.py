"""Reading a recipe's YAML with bounds: what `yaml.safe_load` reads, and no more.

`yaml.safe_load` constructs only plain data, but it reads any amount of it: a 40 MB file, 1,000
levels of nesting (RecursionError), an alias bomb (nine anchors, each listing the previous one
nine times, expand to 9^9 values: minutes and gigabytes in whatever walks the document next), an
alias inside its own anchor (a cycle), keys that are numbers or booleans (`on:`, `3:`), and
duplicate keys, of which it silently keeps the last. `load` reads with the same safe constructor
(`yaml.SafeLoader`), refuses all of these before constructing anything, and names the line:

- at most MAX_BYTES of UTF-8 text (a byte that is not UTF-8 is named with its line);
- at most MAX_DEPTH levels of nesting, counted while the document is composed and again with
  every alias expanded;
- at most MAX_VALUES values once every alias is expanded, counted on the composed graph without
  expanding it, so a bomb is refused in milliseconds; an alias to its own anchor is refused;
- mapping keys are strings, each once per mapping;
- numbers are finite (no `.nan`, `.inf`) and integers have at most MAX_DIGITS digits.

>>> load("a: 1\\nb: [x, y]\\n", "r.yaml")
{'a': 1, 'b': ['x', 'y']}
>>> load("a: 1\\na: 2\\n", "r.yaml")
Traceback (most recent call last):
...
edgeprune.recipe.schema.RecipeError: r.yaml: not a valid recipe
  a: duplicate key (lines 1 and 2); a YAML mapping keeps only one of them
"""

import math
import re

import yaml

from edgeprune.recipe.schema import RecipeError, key_path

MAX_BYTES = 1 << 20     # a recipe takes a few hundred bytes; a long one a few kilobytes
MAX_DEPTH = 32          # the schema nests 5 levels; factory arguments get the rest
MAX_VALUES = 10_000     # values after alias expansion; a recipe has about a hundred
MAX_DIGITS = 64         # digits of an integer
MAX_PROBLEMS = 20       # problems listed before "... and N more"

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_KINDS = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
          "tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "null",
          "tag:yaml.org,2002:timestamp": "a date"}
_NON_FINITE = re.compile(r"^[-+]?\.(inf|nan)$", re.IGNORECASE)


class _Refused(Exception):
    """Raised inside the loader; load() turns it into a RecipeError."""


def problem_list(source, problems, title="not a valid recipe"):
    """One RecipeError message: the source, then at most MAX_PROBLEMS problems and a count."""
    shown = list(problems[:MAX_PROBLEMS])
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    return f"{source}: {title}\n  " + "\n  ".join(shown)


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that stops composing past MAX_DEPTH levels of nesting or MAX_VALUES
    values (keys count too), so reading a hostile file stops early."""

    def __init__(self, stream, where=()):
        super().__init__(stream)
        self._path = list(where)  # key path of the node being composed, for the messages
        self._depth = self._values = 0

    def compose_node(self, parent, index):
        self._depth += 1
        self._values += 1
        if parent is not None:
            self._path.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"{self._where()}: nested more than {MAX_DEPTH} levels deep")
            if self._values > MAX_VALUES:
                raise _Refused(f"{self._where()}: more than {MAX_VALUES} values; a recipe is "
                               "at most that large")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if parent is not None:
                self._path.pop()

    def _where(self):
        """The key path (its first 8 steps) and line of the node about to be composed."""
        steps = [s if isinstance(s, (str, int)) else "?" for s in self._path]
        shown = key_path(steps[:8]) + ("..." if len(steps) > 8 else "")
        return f"{shown} (line {self.peek_event().start_mark.line + 1})"


def decode(data, source):
    """`data` (bytes) as text; RecipeError naming the first byte that is not UTF-8, and its line."""
    if len(data) > MAX_BYTES:
        raise RecipeError(f"{source}: {len(data)} bytes; a recipe is at most {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise RecipeError(f"{source}: not UTF-8 text (byte {data[error.start]:#04x} on line "
                          f"{line}); save the file as UTF-8") from None


def load(text, source, where=()):
    """The plain data of one YAML document (None when it is empty); RecipeError otherwise.

    `where` is the key path the text sits at (a `--set` value), for the messages.
    """
    if len(text) > MAX_BYTES:
        raise RecipeError(f"{source}: {len(text)} characters; a recipe is at most {MAX_BYTES}")
    loader = BoundedLoader(text, where)
    loader.name = source  # YAML's own messages name the file, not "<unicode string>"
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _node_problems(node, list(where))
        if problems:
            raise RecipeError(problem_list(source, problems))
        return loader.construct_document(node)
    except _Refused as refused:
        raise RecipeError(f"{source}: not a valid recipe\n  {refused}") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{source}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def _node_problems(root, where):
    """Problems of the composed document, visiting each node once (aliases share nodes)."""
    problems, sizes, heights = [], {}, {}
    on_path = set()
    # Iterative depth-first walk: (node, path, children visited yet).
    stack = [(root, where, False)]
    while stack:
        node, path, done = stack.pop()
        if done:
            on_path.discard(id(node))
            children = [child for _, child in _children(node)]
            sizes[id(node)] = min(MAX_VALUES + 1, 1 + sum(sizes[id(c)] for c in children))
            heights[id(node)] = 1 + max((heights[id(c)] for c in children), default=0)
            continue
        if id(node) in on_path:
            problems.append(f"{_at(path, node)}: an alias refers to an anchor that contains it "
                            "(a cycle); a recipe is a tree of values")
            sizes[id(node)], heights[id(node)] = MAX_VALUES + 1, 0
            continue
        if id(node) in sizes:
            continue
        problems += _own_problems(node, path)
        on_path.add(id(node))
        stack.append((node, path, True))
        for step, child in reversed(_children(node)):
            if id(child) in on_path:
                problems.append(f"{_at(path + [step], child)}: an alias refers to an anchor "
                                "that contains it (a cycle); a recipe is a tree of values")
                sizes[id(child)], heights[id(child)] = MAX_VALUES + 1, 0
            elif id(child) not in sizes:
                stack.append((child, path + [step], False))
        if len(problems) > MAX_PROBLEMS:
            break
    if not problems and sizes.get(id(root), 0) > MAX_VALUES:
        path = _largest(root, where, sizes, lambda size: size > MAX_VALUES)
        problems.append(f"{key_path(path)}: more than {MAX_VALUES} values once its aliases "
                        "(*name) are expanded; a recipe is at most that large")
    if not problems and heights.get(id(root), 0) + len(where) > MAX_DEPTH:
        path = _largest(root, where, heights, lambda height: height + 2 > MAX_DEPTH - len(where))
        problems.append(f"{key_path(path)}: nested more than {MAX_DEPTH} levels deep once its "
                        "aliases (*name) are expanded")
    return problems


def _largest(root, where, measure, too_big, steps=2):
    """The key path, `steps` levels down at most, of the value that makes the document too big
    (the section and key where an expansion starts, e.g. `model.args`)."""
    node, path = root, list(where)
    for _ in range(steps):
        worst = max(_children(node), key=lambda child: measure.get(id(child[1]), 0),
                    default=None)
        if worst is None or not too_big(measure.get(id(worst[1]), 0)):
            break
        path.append(worst[0])
        node = worst[1]
    return path


def _children(node):
    """[(key path step, child node)] of a collection node; merge keys' values included."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        return [(key.value if isinstance(key, yaml.ScalarNode) else "?", value)
                for key, value in node.value]
    return []


def _at(path, node):
    return f"{key_path(path)} (line {node.start_mark.line + 1})"


def _own_problems(node, path):
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:float" and _NON_FINITE.match(node.value.strip()):
            return [f"{_at(path, node)}: {node.value} is not a finite number"]
        if node.tag == "tag:yaml.org,2002:int" and \
                sum(c.isdigit() for c in node.value) > MAX_DIGITS:
            return [f"{_at(path, node)}: a number of more than {MAX_DIGITS} digits"]
        if node.tag == "tag:yaml.org,2002:float":
            try:
                if not math.isfinite(float(node.value.replace("_", ""))):
                    return [f"{_at(path, node)}: {node.value} is not a finite number"]
            except ValueError:
                pass  # sexagesimal and other YAML 1.1 forms: finite by construction
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    problems, seen = [], {}
    for key, _ in node.value:
        if key.tag == _MERGE:
            continue
        if not isinstance(key, yaml.ScalarNode):
            problems.append(f"{_at(path, key)}: a key that is a list or mapping; keys are text")
            continue
        if key.tag != _STR:
            kind = _KINDS.get(key.tag, f"a {key.tag.rsplit(':', 1)[-1]}")
            problems.append(f"{_at(path + [key.value], key)}: the key {key.value!r} is read as "
                            f"{kind}, not text; quote it (\"{key.value}\") or rename it")
            continue
        if key.value in seen:
            problems.append(f"{key_path(path + [key.value])}: duplicate key (lines "
                            f"{seen[key.value]} and {key.start_mark.line + 1}); a YAML mapping "
                            "keeps only one of them")
        else:
            seen[key.value] = key.start_mark.line + 1
    return problems
