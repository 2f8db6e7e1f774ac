"""Where a layer axis's latency steps: the SIMD tiles that a channel plan must respect.

XNNPACK's kernels process channels in tiles, so latency is flat between multiples of the tile and
jumps after one; a float32 3x3 convolution here computes 33 output channels as slowly as 64. For
each kind of layer axis (1x1 or kxk convolution input or output, depthwise channels, dense input
or output) one layer is measured at widths M, M-3, M-7, M-15, M-31 and M-32 (M a multiple of 32;
of 16, without M-31 and M-32, for axes narrower than 64): the axis steps by the largest s for
which removing s-1 channels saves less than a quarter of what a linear cost (from M to M-32, or
M-16) would; crossing one tile boundary saves about half. That layer is the one of its class
whose M-32 (or M-16) removes the most multiply-accumulates, and it is timed by its fastest run: a
step must stand out of the timing noise, which grows with the layer.
"""

from edgeprune.choose.latency_probes import resized

STEP_CANDIDATES = (32, 16, 8, 4)
FLAT = 0.25  # of a linear cost: what s-1 channels removed within one tile may save


def axis_class(layer, axis_name):
    """Layers whose axis shares a kernel family share a SIMD step: 1x1 or kxk convolution input
    or output, depthwise channels, dense input or output."""
    kind = layer.probe.kind
    if kind == "conv":
        kind = "conv1x1" if layer.probe.kernel == (1, 1) else "convkxk"
    return kind, axis_name


def axis_steps(layers, bench):
    """`{(kind, axis): step}` from one layer of each class (see the module doc); `layers` are
    `latency`'s measured layers (a `probe`, its `macs`, an `input` and an `output` axis)."""
    plans = {}
    for key, (layer, axis_name) in _step_layers(layers).items():
        width = getattr(layer, axis_name).width
        span = _span(width)
        top = width // span * span
        plans[key] = {removed: resized(layer.probe, axis_name, top - removed)
                      for removed in _step_widths(span)}
    bench.ensure([probe for plan in plans.values() for probe in plan.values()], "SIMD steps")
    # By the fastest run whatever the statistic: a step is a difference of a few percent between
    # single probes, and a median of a large layer moved by more than that between probes here.
    return {key: step_of({removed: bench.latency_us(probe, "min_us")
                          for removed, probe in plan.items()})
            for key, plan in plans.items()}


def _step_layers(layers):
    """`{(kind, axis): (layer, axis name)}`: in each class, the layer whose axis loses the most
    multiply-accumulates over the span. A step must stand out of the timing noise, which grows
    with the layer's time: 16 channels of MobileNetV2's 1280-wide last convolution are 1% of it,
    below the noise, where half of a 64-wide layer is not."""
    chosen = {}
    for layer in layers:
        for axis_name in ("input", "output"):
            axis = getattr(layer, axis_name)
            if axis is None or axis.width < 32:
                continue
            key, signal = axis_class(layer, axis_name), layer.macs * _span(axis.width) / axis.width
            if key not in chosen or signal > chosen[key][0]:
                chosen[key] = (signal, layer, axis_name)
    return {key: (layer, axis_name) for key, (_, layer, axis_name) in chosen.items()}


def _span(width):
    """Channels removed for the linear reference: 32 where the axis has 64, else 16."""
    return STEP_CANDIDATES[0] if width >= 2 * STEP_CANDIDATES[0] else 16


def _step_widths(span):
    """Channels removed from the top width to find the step: s-1 for each candidate s up to
    `span`, and `span` itself for the linear reference."""
    return sorted({0, span, *(s - 1 for s in STEP_CANDIDATES if s <= span)})


def step_of(latency_removed):
    """An axis's SIMD step from `{channels removed from a multiple of the span: latency}`.

    The span is the most channels removed, the linear reference; the step is the largest
    candidate s whose s-1 removed channels save less than `FLAT` of a linear cost, or 1.

    >>> tiles_of_8 = {r: 8 * (-(-(64 - r) // 8)) for r in (0, 3, 7, 15, 31, 32)}
    >>> step_of(tiles_of_8), step_of({r: 64 - r for r in (0, 3, 7, 15, 31, 32)})
    (8, 1)
    """
    span = max(latency_removed)
    full = latency_removed[0]
    per_channel = (full - latency_removed[span]) / span
    if per_channel <= 0:
        return 1
    flat = [s for s in STEP_CANDIDATES if s <= span
            and full - latency_removed[s - 1] < FLAT * per_channel * (s - 1)]
    return max(flat, default=1)


def within_half(step, size):
    """`step`, or the largest smaller candidate that leaves a group of `size` channels a choice
    of two kept counts."""
    return max([s for s in (1, *STEP_CANDIDATES) if s <= step and 2 * s <= size], default=1)
