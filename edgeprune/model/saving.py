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


def load_keras_file(path, compile=False):
    """`keras.models.load_model(path, safe_mode=True)`; anything wrong with the file raises
    `device_bench.errors.ModelFileError` naming it (not Keras' or zipfile's bare errors).

    Only a regular file is opened (a FIFO would block), and only a zip archive is handed to Keras.
    """
    import stat
    import zipfile

    from device_bench.errors import ModelFileError

    path = os.fspath(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{path}: not a regular file; pass the path of a .keras file")
        with open(path, "rb") as f:
            zipped = zipfile.is_zipfile(f)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: cannot read it (file not found)") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not zipped:
        raise ModelFileError(f"{path}: not a Keras 3 model file (a .keras file is a zip archive); "
                             "for a .tflite use a .tflite file name, for Keras 2 .h5 files "
                             "re-save the model with Keras 3")
    import keras

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # noqa: BLE001 -- Keras and zipfile raise many types on bad files
        text = " ".join(str(error).split())[:600]
        raise ModelFileError(f"{path}: Keras cannot load it ({type(error).__name__}: {text})") \
            from None
