"""Data for quickstarts, tests and benchmarks, made locally (no download): scikit-learn's digits
and MNIST-1D."""


def load_digits(test_fraction=0.25, seed=0):
    """Returns `(x_train, y_train), (x_test, y_test)` from scikit-learn's bundled 8x8 digits.

    Images are float32 in [0, 1] with shape (N, 8, 8, 1); labels are int32 in 0..9. The split is
    stratified and deterministic for a given `seed`.

    >>> (x, y), (xt, yt) = load_digits()
    >>> x.shape[1:], int(y.max())
    ((8, 8, 1), 9)
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    digits = sk_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return (x_train, y_train), (x_test, y_test)


# The published benchmark's generation settings (`mnist1d.data.get_dataset_args()`), less its URL.
MNIST1D_ARGS = ("num_samples", "train_split", "template_len", "padding", "scale_coeff",
                "max_translation", "corr_noise_scale", "iid_noise_scale", "shear_scale",
                "shuffle_seq", "final_seq_length", "seed")


def load_mnist1d(num_samples=5000, seed=42, train_split=0.8, final_seq_length=40,
                 shuffle_seq=False, **dataset_args):
    """Returns `(x_train, y_train), (x_test, y_test)` of MNIST-1D, generated locally.

    MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024) turns the
    ten digits into 1-D templates and adds padding, translation, scaling, shear and noise. The
    defaults are the benchmark's own (`mnist1d.data.get_dataset_args()`): 5,000 samples (500 per
    class), seed 42, the first 80% for training (4,000) and the rest for testing (1,000), sequences
    of 40. The paper's test accuracies with this split: logistic regression 32%, MLP 68%, CNN 94%,
    GRU 91%. The samples come from `mnist1d.data.make_dataset`, which builds them with NumPy; its
    `get_dataset` (which downloads a pickle) is never called.

    `x` is float32 shaped (N, final_seq_length, 1): one channel per time step, ready for `Conv1D`
    (flatten it for a `Dense` model). It is standardized over the whole set (mean 0, std 1), as
    mnist1d does. `y` is int32 in 0..9. The same arguments always give the same arrays; another
    `seed` gives another draw. The caller's global random state (`numpy.random`, `random`),
    which mnist1d reseeds, is restored afterwards.

    `dataset_args` passes mnist1d's other generation settings through (`template_len`, `padding`,
    `scale_coeff`, `max_translation`, `corr_noise_scale`, `iid_noise_scale`, `shear_scale`).

    >>> (x, y), (xt, yt) = load_mnist1d()
    >>> x.shape, xt.shape, x.dtype.name, sorted(set(y.tolist())) == list(range(10))
    ((4000, 40, 1), (1000, 40, 1), 'float32', True)
    """
    import random

    import numpy as np

    try:
        import mnist1d.data
    except ImportError as error:
        raise ImportError(
            "load_mnist1d needs the `mnist1d` package (a dependency of edgeprune; 14 KB, pure "
            "Python): pip install mnist1d, or reinstall edgeprune with its dependencies "
            "(pip install -e .).") from error

    settings = dict(num_samples=num_samples, seed=seed, train_split=train_split,
                    final_seq_length=final_seq_length, shuffle_seq=shuffle_seq, **dataset_args)
    unknown = sorted(set(settings) - set(MNIST1D_ARGS))
    if unknown:
        raise TypeError(f"load_mnist1d got unknown setting(s) {unknown}; mnist1d's are "
                        f"{list(MNIST1D_ARGS)}.")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 10:
        raise ValueError(f"num_samples must be an integer >= 10 (one per class), got "
                         f"{num_samples!r}.")
    if not 0 < train_split < 1:
        raise ValueError(f"train_split must be in (0, 1), got {train_split!r}.")
    args = mnist1d.data.get_dataset_args(as_dict=True)
    args.pop("url", None)
    args.update(settings)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds the global generators; give the caller theirs back
        data = mnist1d.data.make_dataset(_ArgsView(args))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

    def as_arrays(x, y):
        return np.asarray(x, "float32")[..., None], np.asarray(y, "int32")

    return as_arrays(data["x"], data["y"]), as_arrays(data["x_test"], data["y_test"])


class _ArgsView:
    """The attribute view of a settings dict that mnist1d's generator reads."""

    def __init__(self, settings):
        self.__dict__.update(settings)
