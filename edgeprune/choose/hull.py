"""The lower convex hull of each unit's drop curve, cut into segments and spent cheapest first:
the Lagrangian solution of "least total drop for this much of the budget removed", which
`allocate` searches along."""

import dataclasses


@dataclasses.dataclass
class Segment:
    """A straight piece of one unit's drop curve, in first-order budget units."""

    slope: float
    unit: str
    start: float  # sparsity at the start
    end: float
    scale: float  # budget units removed per unit of sparsity

    @property
    def length(self):
        return (self.end - self.start) * self.scale


def hull_segments_by_slope(table, cost_per_element, skip, cap):
    """Every unit's hull segments up to sparsity `cap` (skipped units and units whose removal
    costs nothing left out), cheapest drop per budget unit first; `cost_per_element[unit]` is
    what removing one weight or channel of it saves."""
    segments = []
    for unit in table.units:
        if unit in skip:
            continue
        scale = cost_per_element[unit] * table.sizes[unit]
        if scale <= 0:
            continue  # pruning this unit does not move the budget
        levels = [s for s in table.sparsities if s <= cap]
        drops = [0.0] + list(table.drop(unit)[:len(levels)])
        for (s0, d0), (s1, d1) in hull_segments([0.0] + levels, drops):
            segments.append(Segment((d1 - d0) / ((s1 - s0) * scale), unit, s0, s1, scale))
    # A unit's hull slopes increase, so a stable sort keeps each unit's segments in order.
    return sorted(segments, key=lambda segment: segment.slope)


def spend(segments, amount):
    """Takes segments cheapest first until `amount` is removed; the last one partially."""
    sparsity, predicted = {}, 0.0
    for segment in segments:
        if amount <= 0:
            break
        step = min(segment.length, amount)
        sparsity[segment.unit] = segment.start + step / segment.scale
        predicted += step * segment.slope
        amount -= step
    return sparsity, predicted


def hull_segments(xs, ys):
    """Segments of the lower convex hull of the points (xs ascending, starting at (0, 0))."""
    hull = []
    for point in zip(xs, ys):
        while len(hull) >= 2 and cross(hull[-2], hull[-1], point) <= 0:
            hull.pop()
        hull.append(point)
    return list(zip(hull[:-1], hull[1:]))


def cross(o, a, b):
    """The z of (a - o) x (b - o): positive when o, a, b turn left."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
