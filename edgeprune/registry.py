"""A registry of named extension objects of one kind (granularities, channel criteria): what every
user-facing vocabulary of edgeprune is read from, so a vocabulary is defined once."""


class Registry:
    """Objects of class `base`, each under its `name`, in registration order.

    >>> class Fruit:
    ...     def __init__(self, name):
    ...         self.name = name
    >>> fruits = Registry(Fruit, "fruit")
    >>> fruits.register(Fruit("apple"))
    >>> fruits.get("apple").name, fruits.names()
    ('apple', ['apple'])
    >>> fruits.get("pear")
    Traceback (most recent call last):
    ...
    ValueError: Unknown fruit 'pear'; registered: apple.
    """

    def __init__(self, base, noun):
        self.base, self.noun = base, noun
        self._items = {}

    def register(self, item):
        """Adds `item` (an instance of `base` with a `name`); a name registered again is
        replaced."""
        if not isinstance(item, self.base) or not getattr(item, "name", None):
            raise ValueError(f"A {self.noun} must be a {self.base.__name__} instance with a name, "
                             f"got {item!r}.")
        self._items[item.name] = item

    def unregister(self, name):
        """Removes the object registered as `name` (a test's or a notebook's own)."""
        self._items.pop(name, None)

    def get(self, name):
        if name not in self._items:
            raise ValueError(f"Unknown {self.noun} {name!r}; registered: "
                             f"{', '.join(self._items)}.")
        return self._items[name]

    def names(self):
        return list(self._items)

    def items(self):
        return list(self._items.values())
