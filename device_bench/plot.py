"""Latency per device as an SVG bar chart, written as text (no plotting library on a board).

A bar per device and model: the bar is the median (p50), the whisker runs from the fastest run to
p99; a device without latency says why (failed, timed out, or a `micro` target, which gives a
board verdict rather than times).

>>> from device_bench.schema import DeviceRun, FleetResult
>>> svg = fleet_svg(FleetResult([DeviceRun("pi", "ssh://pi@pi", "failed", 1.0, error="refused")],
...                             lanes=[["pi"]], wall_seconds=1.0))
>>> svg.startswith("<svg") and "failed: refused" in svg
True
"""

import os
from xml.sax.saxutils import escape

from device_bench.report import time_text

ROW, LABEL_WIDTH, BAR_WIDTH, TEXT_WIDTH = 24, 230, 360, 250
BAR_COLOUR, WHISKER_COLOUR, FAILED_COLOUR = "#4c72b0", "#333333", "#b22222"


def _rows(fleet):
    """(label, latency or None, text, failed) per device and model, in the fleet's order."""
    rows = []
    for device in fleet.devices:
        if device.result is None:
            rows.append((device.name, None, f"{device.status}: {device.error}", True))
            continue
        several = len(device.result.models) > 1
        for model in device.result.models:
            label = f"{device.name} {os.path.basename(model.graph)}" if several else device.name
            if model.latency is None:
                rows.append((label, None, model.micro.verdict if model.micro else "no latency",
                             False))
            else:
                text = (f"p50 {time_text(model.latency.p50_us)}, "
                        f"p99 {time_text(model.latency.p99_us)}")
                rows.append((label, model.latency, text, False))
    return rows


def fleet_svg(fleet):
    """The SVG document (text) of the fleet's latency per device."""
    rows = _rows(fleet)
    scale = max([lat.p99_us or lat.p50_us for _, lat, _, _ in rows if lat] + [1e-9])
    width, height = LABEL_WIDTH + BAR_WIDTH + TEXT_WIDTH, ROW * (len(rows) + 2)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              'font-family="sans-serif" font-size="12">'),
             (f'<text x="8" y="16" font-weight="bold">latency per device (bar: p50, line: min '
              f'to p99; fleet of {len(fleet.devices)} in {fleet.wall_seconds:.1f} s)</text>')]
    for index, (label, latency, text, failed) in enumerate(rows):
        y = ROW * (index + 1) + 6
        middle = y + ROW / 2
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{middle + 4:.1f}" text-anchor="end">'
                     f'{escape(label[:40])}</text>')
        text_x = LABEL_WIDTH + 4
        if latency is not None:
            def x(us):
                return LABEL_WIDTH + BAR_WIDTH * (us or 0) / scale
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y + 4}" '
                         f'width="{x(latency.p50_us) - LABEL_WIDTH:.1f}" height="{ROW - 8}" '
                         f'fill="{BAR_COLOUR}"/>')
            low, high = x(latency.min_us), x(latency.p99_us or latency.p50_us)
            parts.append(f'<path d="M{low:.1f} {middle:.1f}H{high:.1f}M{low:.1f} {middle - 4:.1f}'
                         f'v8M{high:.1f} {middle - 4:.1f}v8" stroke="{WHISKER_COLOUR}"/>')
            text_x = high + 6
        colour = FAILED_COLOUR if failed else "black"
        parts.append(f'<text x="{text_x:.1f}" y="{middle + 4:.1f}" fill="{colour}">'
                     f'{escape(text[:90])}</text>')
    axis_y = ROW * (len(rows) + 1) + 6
    parts.append(f'<path d="M{LABEL_WIDTH} {ROW + 6}V{axis_y}H{LABEL_WIDTH + BAR_WIDTH}" '
                 'stroke="#999999" fill="none"/>')
    parts.append(f'<text x="{LABEL_WIDTH}" y="{axis_y + 14}">0</text>'
                 f'<text x="{LABEL_WIDTH + BAR_WIDTH}" y="{axis_y + 14}" text-anchor="end">'
                 f'{escape(time_text(scale))}</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"
