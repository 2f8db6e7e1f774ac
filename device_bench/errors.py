"""The one exception type device_bench raises for anything a user can fix.

Every message names the thing that is wrong and what to do about it; the CLI prints it on one line
without a stack trace.
"""


class BenchError(Exception):
    """A problem with the user's input, model file, target or board, explained in the message.

    >>> raise BenchError("model.tflite: file not found; check the --graph path")
    Traceback (most recent call last):
    ...
    device_bench.errors.BenchError: model.tflite: file not found; check the --graph path
    """


class ModelFileError(BenchError, ValueError):
    """A model file that cannot be read or is not a well-formed model; the message starts with
    the file's name and says what is wrong.

    Its own type so that callers (edgeprune's size report, validation and micro export use the
    same reader) can tell a bad file from other problems. edgeprune raises it for `.keras` files
    too (`edgeprune inspect`, a recipe's `model.keras_file`) and exports it as
    `ep.ModelFileError`. It is also a ValueError, so `except ValueError` keeps catching a bad
    model file, as it caught Keras' own errors on one.
    """
