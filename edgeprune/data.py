"""Bundled data for quickstarts, tests and benchmarks: scikit-learn's digits set (no download)."""


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
