"""How scores become masks: unstructured, block, N:M, and global ranking across weights.

Everything here is NumPy: masks are recomputed at pruning steps only, outside the training graph.
"""

import numpy as np

from edgeprune.sparsity.layer_registry import reduction_axis


def kept_count(size, sparsity):
    """How many units survive `sparsity` (tfmot's rule: at least one)."""
    return max(1, int(round(size * (1.0 - sparsity))))


def top_k_mask(scores, k):
    """1 for the `k` largest scores, 0 elsewhere (exactly k; of the scores tied at the cut, the
    first ones)."""
    return _top_k(scores, k)[0]


def _top_k(scores, k):
    """`(top_k_mask(scores, k), the smallest kept score)`. A partition finds the cut value and a
    comparison makes the mask: several times faster than `argpartition` on a kernel of millions
    of weights, at every pruning step."""
    flat = scores.reshape(-1)
    if k >= flat.size:
        return np.ones(scores.shape, np.float32), flat.min()
    nan = np.isnan(flat)
    if nan.any():  # np.partition sorts NaN above everything: rank NaN scores lowest instead
        flat = np.where(nan, -np.inf, flat)
    cut = _kth_largest(flat, k)
    keep = flat > cut
    keep[np.flatnonzero(flat == cut)[:k - np.count_nonzero(keep)]] = True
    return keep.astype(np.float32).reshape(scores.shape), cut


def _kth_largest(flat, k):
    """The k-th largest of `flat` (1 <= k < flat.size). Scores of pruned weights are exactly 0
    (masks zero them, epoch ends bake the zeros), and `np.partition` slows down with the length of
    a run of equal values near its cut: 10x at 80% zeros. So the positive scores are partitioned
    alone when the zeros are many, and a cut that falls among the zeros is 0 without a search.
    Negative scores (NaN ranked as -inf) go through the plain partition."""
    positive = flat > 0
    count = int(np.count_nonzero(positive))
    if count >= k and flat.size - count > flat.size // 8:
        return np.partition(flat[positive], count - k)[count - k]
    if count < k and count + np.count_nonzero(flat == 0) >= k:
        return flat.dtype.type(0)
    return np.partition(flat, flat.size - k)[flat.size - k]


def _as_matrix(weight):
    """A 2-D view: rank-2 weights as stored, higher ranks as [prod(shape[:-1]), shape[-1]]."""
    return weight.reshape(1, -1) if weight.ndim < 2 else weight.reshape(-1, weight.shape[-1])


def block_scores(weight, block_size, pooling):
    """Pools |weight| over blocks of `block_size` on the 2-D view; edge blocks are partial."""
    rows, cols = block_size
    matrix = np.abs(_as_matrix(weight))
    pad = ((0, -matrix.shape[0] % rows), (0, -matrix.shape[1] % cols))
    if pooling == "MAX":
        padded = np.pad(matrix, pad)
        blocks = padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // cols, cols)
        return blocks.max(axis=(1, 3))
    padded = np.pad(matrix, pad)
    counts = np.pad(np.ones_like(matrix), pad)
    shape = (padded.shape[0] // rows, rows, padded.shape[1] // cols, cols)
    return padded.reshape(shape).sum(axis=(1, 3)) / counts.reshape(shape).sum(axis=(1, 3))


def expand_blocks(block_mask, weight_shape, block_size):
    """Inverse of `block_scores`' pooling: one mask value per weight, in the weight's shape."""
    rows, cols = block_size
    full = np.repeat(np.repeat(block_mask, rows, axis=0), cols, axis=1)
    matrix_shape = (1, int(np.prod(weight_shape))) if len(weight_shape) < 2 else (
        int(np.prod(weight_shape[:-1])), weight_shape[-1])
    return full[:matrix_shape[0], :matrix_shape[1]].reshape(weight_shape)


def magnitude_mask(weight, sparsity, block_size=(1, 1), pooling="AVG"):
    """Keeps the largest-magnitude weights (or blocks); returns (mask, threshold)."""
    if tuple(block_size) == (1, 1):
        # The smallest kept magnitude is the threshold.
        mask, threshold = _top_k(np.abs(weight), kept_count(weight.size, sparsity))
        return mask, float(threshold)
    scores = block_scores(weight, block_size, pooling)
    mask = expand_blocks(top_k_mask(scores, kept_count(scores.size, sparsity)),
                         weight.shape, block_size)
    return mask, _threshold(np.abs(weight), mask)


def global_magnitude_masks(weights, sparsity, block_size=(1, 1), pooling="AVG"):
    """Ranks the weights (or blocks) of several tensors together; returns [(mask, threshold)]."""
    if tuple(block_size) == (1, 1):
        scores = [np.abs(w) for w in weights]
    else:
        scores = [block_scores(w, block_size, pooling) for w in weights]
    flat = np.concatenate([s.reshape(-1) for s in scores])
    flat_mask = top_k_mask(flat, kept_count(flat.size, sparsity))
    results, start = [], 0
    for weight, score in zip(weights, scores):
        mask = flat_mask[start:start + score.size].reshape(score.shape)
        start += score.size
        if tuple(block_size) != (1, 1):
            mask = expand_blocks(mask, weight.shape, block_size)
        results.append((mask, _threshold(np.abs(weight), mask)))
    return results


def m_by_n_mask(weight, m_by_n):
    """`m` zeros in every `n` consecutive weights along TFLite's input-channel axis.

    A trailing partial group of r < n weights keeps min(r, n - m) of them, so no group is ever
    sparser than m/n.
    """
    zeros, group = m_by_n
    axis = reduction_axis(weight.ndim)
    moved = np.moveaxis(np.abs(weight), axis, -1)
    length = moved.shape[-1]
    pad = -length % group
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)], constant_values=-1.0)
    grouped = padded.reshape(*padded.shape[:-1], -1, group)
    # Padding scores -1 so it is always among the dropped: a partial group loses fewer real weights.
    order = np.argsort(-grouped, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")
    keep = (ranks < group - zeros).astype(np.float32)
    mask = keep.reshape(padded.shape)[..., :length]
    mask = np.moveaxis(mask, -1, axis)
    return mask, _threshold(np.abs(weight), mask)


def _threshold(magnitudes, mask):
    kept = magnitudes[mask > 0]
    return float(kept.min()) if kept.size else 0.0
