"""Saving a model so that a reader never sees half a file: the one atomic `.keras` saver."""

import os


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary file in the same folder and one `os.replace`:
    `path` holds the old file or the new one, never a partial write."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{name}.partial.keras")
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
