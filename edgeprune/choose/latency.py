"""A latency model measured on the target device: what a channel plan costs in milliseconds.

MACs mislead on edge CPUs: int8 kernels, depthwise layers and the early high-resolution layers
cost far more time per MAC than the fat 1x1 convolutions channel pruning shrinks most. So each
Conv2D, DepthwiseConv2D and Dense layer of the model is measured on the device itself (any
device_bench target: `local`, `ssh://`, `adb://`), as a one-layer `.tflite` at the deployment's
precision and thread count, at a few widths of each channel axis a coupled channel group prunes:

- **Steps first** (`edgeprune.choose.latency_steps`): XNNPACK's kernels process channels in
  tiles, so each kind of layer axis is timed at a few widths near a multiple of 32 to find its
  step. Each group's `round_to` is the largest step over the layer axes it spans, so kept counts
  never pay for a padded tile, but at most half the group, so a narrow group can still be pruned.
- **Curves.** Each layer axis is measured at `fractions` of its width (default 1/4, 1/2 and 1),
  rounded to its step, with the other axis at full width; latency is interpolated piecewise
  linearly between them (and extended linearly below the smallest, never under zero). A layer
  between two pruned groups costs `f(a, B) * f(A, b) / f(A, B)`: convolution time is close to
  proportional to each axis.
- **Calibration.** The whole dense `.tflite` is measured once. By default (`calibration="scale"`)
  the layers' sum is scaled to the dense measurement, so whatever separates the two (additions,
  padding, quantize ops, the interpreter's overhead, or layers timed alone running faster or
  slower than inside the network) grows with the work. With `calibration="remainder"` the
  difference is added to every prediction unchanged instead. Measured on MobileNetV2 here, the
  float32 layers timed alone added up to more than the whole network (a negative remainder), and
  "remainder" missed 1/2, 1/3 and 1/5 targets by +19% to +47% where "scale" landed within 10%.

Measurements go to a JSON cache per device and runtime (`~/.cache/edgeprune/latency`), so a second
run on the same device measures nothing; identical layers are measured once.
"""

import dataclasses

import numpy as np

from edgeprune.choose.latency_probes import STATISTICS, Probe, ProbeBench, resized
from edgeprune.choose.latency_steps import axis_class, axis_steps, within_half
from edgeprune.model.keras_internals import inbound_nodes
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.structured.graph import ChannelGraph

PRECISIONS = ("float32", "int8")
CALIBRATIONS = ("remainder", "scale")
DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)


@dataclasses.dataclass
class Axis:
    """One channel axis of a measured layer: its width, the prunable groups' channels in it, its
    SIMD step and its latency curve `[(width, µs)]` (the layer's other axis at full width)."""

    width: int
    groups: dict
    step: int = 1
    curve: list = dataclasses.field(default_factory=list)

    def kept(self, kept_fraction):
        """Width left when each group keeps `kept_fraction[group]` of its channels."""
        removed = sum(count * (1.0 - kept_fraction.get(group, 1.0))
                      for group, count in self.groups.items())
        return self.width - removed

    def latency_us(self, width):
        widths, values = zip(*self.curve)
        if width >= widths[0] or len(widths) == 1:
            return float(np.interp(width, widths, values))
        slope = (values[1] - values[0]) / (widths[1] - widths[0])
        return max(0.0, values[0] - slope * (widths[0] - width))


@dataclasses.dataclass
class LayerLatency:
    """A measured layer: dense latency and its input and output axes (None where no pruned group
    reaches it). A depthwise layer has one axis, its channels, as `output`."""

    name: str
    kind: str
    dense_us: float
    input: Axis = None
    output: Axis = None

    def latency_us(self, kept_fraction):
        ratio = 1.0
        for axis in (self.input, self.output):
            if axis is not None and axis.groups:
                ratio *= axis.latency_us(axis.kept(kept_fraction)) / self.dense_us
        return self.dense_us * ratio


@dataclasses.dataclass
class LatencyModel:
    """Predicted latency (ms) of a model whose channel groups keep some of their channels.

    Made by `measure_latency_model`; `predict_ms({group: sparsity})` sums the measured layers and
    the calibrated remainder. `round_to[group]` is the group's SIMD step: kept counts are rounded
    up to it, where the latency is flat anyway.

    >>> model = LatencyModel("local", "float32", 1, "median", {"g": 16}, {"g": 8}, [LayerLatency(
    ...     "conv", "conv", 100.0, output=Axis(16, {"g": 16}, 8, [(8, 60.0), (16, 100.0)]))],
    ...     remainder_us=20.0)
    >>> model.predict_ms({}), model.predict_ms({"g": 0.5}), model.predict_ms({"g": 0.6})
    (0.12, 0.08, 0.08)
    """

    target: str
    precision: str
    num_threads: int
    statistic: str
    sizes: dict
    round_to: dict
    layers: list
    remainder_us: float = 0.0
    scale: float = 1.0
    dense_measured_ms: float = None
    steps: dict = dataclasses.field(default_factory=dict)
    measured_probes: int = 0
    cached_probes: int = 0

    def kept_channels(self, sparsity):
        """`{group: channels kept}` as `apply_channel_allocation` keeps them (rounded up to the
        group's step, at least one)."""
        kept = {}
        for group, size in self.sizes.items():
            count = max(1, int(round(size * (1.0 - sparsity.get(group, 0.0)))))
            step = self.round_to.get(group, 1)
            kept[group] = min(-(-count // step) * step, size)
        return kept

    def rounded(self, sparsity):
        """`sparsity` with each group's kept count rounded as `kept_channels` does."""
        return {group: 1.0 - kept / self.sizes[group]
                for group, kept in self.kept_channels(sparsity).items() if group in sparsity}

    def predict_ms(self, sparsity):
        fraction = {g: kept / self.sizes[g] for g, kept in self.kept_channels(sparsity).items()}
        layers_us = sum(layer.latency_us(fraction) for layer in self.layers)
        return (self.remainder_us + self.scale * layers_us) / 1e3

    def layer_ms(self, sparsity=None):
        """`{layer: predicted ms}`: where the time goes."""
        sparsity = sparsity or {}
        fraction = {g: kept / self.sizes[g] for g, kept in self.kept_channels(sparsity).items()}
        return {layer.name: self.scale * layer.latency_us(fraction) / 1e3
                for layer in self.layers}

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        layers = [LayerLatency(**{**layer, **{k: Axis(**layer[k]) if layer[k] else None
                                              for k in ("input", "output")}})
                  for layer in data["layers"]]
        return cls(**{**data, "layers": layers})


def measure_latency_model(model, target="local", precision="float32", num_threads=1,
                          dense_tflite=None, fractions=DEFAULT_FRACTIONS, cache_dir=None,
                          num_runs=30, statistic="median", calibration="scale",
                          progress=True, **target_options):
    """Measures the `LatencyModel` of `model`'s channel groups on `target` (see the module doc).

    Args:
        model: a Functional or Sequential Keras model (not changed).
        target: a device_bench target, "local", "ssh://user@host" or "adb://SERIAL"; its options
            (e.g. key_filename, benchmark_binary) as keyword arguments. One connection is used.
        precision: "float32" or "int8" (full integer, int8 input and output).
        num_threads: the deployment's thread count.
        dense_tflite: the dense model converted at `precision` (bytes or a path), e.g.
            `ep.export_tflite(model, quantize="int8", ...)`; measured whole to calibrate the
            remainder. Without it the remainder is 0 and predictions undercount.
        fractions: widths measured along each axis, as fractions of the full width.
        cache_dir: where measurements are kept (default `$XDG_CACHE_HOME/edgeprune/latency`).
        num_runs: timed runs per probe (interleaved, in batches of 8).
        statistic: "median" of the timed runs, or "min" on a loaded machine, where a long
            invoke is preempted far more often than a short one and medians of the whole model
            and of single layers stop adding up; check predictions with the same statistic.
        calibration: "scale" (scale the layers to the dense model) or "remainder" (add what the
            dense model takes beyond its layers); see the module doc.
        progress: a tqdm bar while measuring.

    >>> latency = ep.measure_latency_model(model, precision="int8", dense_tflite=int8_bytes)  # doctest: +SKIP
    >>> latency.predict_ms({}), latency.dense_measured_ms                                   # doctest: +SKIP
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}.")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}.")
    fractions = sorted({float(f) for f in fractions} | {1.0})
    if fractions[0] <= 0 or fractions[-1] > 1:
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}.")
    graph = ChannelGraph(model)
    layers = _measured_layers(model, graph)
    bench = ProbeBench(target, precision, num_threads, num_runs, statistic, cache_dir, progress,
                   target_options)
    with bench:
        steps = axis_steps(layers, bench)
        round_to = {group.name: 1 for group in graph.groups}
        for layer in layers:
            for axis_name, axis in (("input", layer.input), ("output", layer.output)):
                if axis is not None:
                    axis.step = steps.get(axis_class(layer, axis_name), 1)
                    for group in axis.groups:
                        round_to[group] = max(round_to[group], axis.step)
        round_to = {group.name: within_half(round_to[group.name], len(group))
                    for group in graph.groups}
        _measure_curves(layers, round_to, fractions, bench)
        dense_ms = None if dense_tflite is None else bench.whole_model_ms(dense_tflite)
    measured = []
    for layer in layers:
        probe = layer.probe
        dense_us = bench.latency_us(probe)
        axes = {}
        for axis_name in ("input", "output"):
            axis = getattr(layer, axis_name)
            if axis is None:
                continue
            widths = sorted(_widths(axis.width, round_to_of(axis, round_to), fractions))
            curve = [(w, bench.latency_us(resized(probe, axis_name, w))) for w in widths]
            axes[axis_name] = Axis(axis.width, axis.groups, round_to_of(axis, round_to), curve)
        measured.append(LayerLatency(layer.name, probe.kind, dense_us, **axes))
    remainder, scale, layers_us = 0.0, 1.0, sum(layer.dense_us for layer in measured)
    if dense_ms is not None and calibration == "scale":
        scale = dense_ms * 1e3 / layers_us
    elif dense_ms is not None:
        remainder = dense_ms * 1e3 - layers_us
    return LatencyModel(bench.name, precision, num_threads, statistic,
                        sizes={group.name: len(group) for group in graph.groups},
                        round_to=round_to, layers=measured, remainder_us=remainder, scale=scale,
                        dense_measured_ms=dense_ms,
                        steps={f"{kind}/{axis}": step for (kind, axis), step in steps.items()},
                        measured_probes=bench.measured, cached_probes=bench.cached)


def round_to_of(axis, round_to):
    return max([round_to[group] for group in axis.groups] + [1])


# --- which layers, and their probes ---

@dataclasses.dataclass
class _Layer:
    name: str
    probe: Probe
    macs: int
    input: Axis = None
    output: Axis = None


def _measured_layers(model, graph):
    """The Conv2D, DepthwiseConv2D and Dense layers of `model` with their probes and the prunable
    channels on each axis; other layers fall into the calibrated remainder."""
    import keras

    axes = {}  # id(layer) -> {"in"/"out"/"pass": {group: count}}
    for s in graph.slices:
        if s.role not in ("in", "out", "pass") or not s.weight.endswith("kernel"):
            continue
        groups = graph.atom_group[s.atoms]
        counts = {graph.groups[g].name: int(c)
                  for g, c in zip(*np.unique(groups[groups >= 0], return_counts=True))}
        axes.setdefault(id(s.layer), {})[s.role] = counts
    found = []
    for layer in leaf_layers(model):
        layer = getattr(layer, "layer", layer)  # a pruning wrapper's layer
        own = axes.get(id(layer), {})
        nodes = inbound_nodes(layer)
        if not nodes or not any(own.values()):
            continue
        shape = tuple(nodes[0].input_tensors[0].shape)[1:]
        config = layer.get_config()
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            if config.get("depth_multiplier", 1) != 1:
                continue
            probe = _conv_probe("depthwise", shape, config, shape[-1])
            found.append(_Layer(layer.name, probe, _macs(probe),
                                output=Axis(shape[-1], own.get("pass", {}))))
        elif type(layer) is keras.layers.Conv2D and config.get("groups", 1) == 1:
            probe = _conv_probe("conv", shape, config, config["filters"])
            found.append(_Layer(layer.name, probe, _macs(probe),
                                Axis(shape[-1], own.get("in", {})),
                                Axis(config["filters"], own.get("out", {}))))
        elif type(layer) is keras.layers.Dense:
            rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            probe = Probe("dense", (rows,) if rows > 1 else (), (), (), "valid", (),
                          int(shape[-1]), int(config["units"]))
            found.append(_Layer(layer.name, probe, _macs(probe),
                                Axis(shape[-1], own.get("in", {})),
                                Axis(config["units"], own.get("out", {}))))
    for layer in found:
        for name in ("input", "output"):
            if getattr(layer, name) is not None and not getattr(layer, name).groups:
                setattr(layer, name, None)
    return found


def _conv_probe(kind, shape, config, cout):
    pair = lambda value: tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    return Probe(kind, tuple(int(d) for d in shape[:2]), pair(config["kernel_size"]),
                 pair(config["strides"]), config["padding"], pair(config["dilation_rate"]),
                 int(shape[-1]), int(cout))


def _macs(probe):
    positions = int(np.prod(probe.spatial)) if probe.spatial else 1
    per_position = probe.cin * int(np.prod(probe.kernel or (1,)))
    return positions * per_position * (1 if probe.kind == "depthwise" else probe.cout)


# --- curves ---

def _widths(full, step, fractions):
    return {min(full, max(step, int(round(full * f / step)) * step)) for f in fractions} | {full}


def _measure_curves(layers, round_to, fractions, bench):
    probes = []
    for layer in layers:
        probes.append(layer.probe)
        for axis_name in ("input", "output"):
            axis = getattr(layer, axis_name)
            if axis is not None:
                probes += [resized(layer.probe, axis_name, w)
                           for w in _widths(axis.width, round_to_of(axis, round_to), fractions)]
    bench.ensure(probes, "layer widths")
