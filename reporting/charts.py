"""Charts drawn on the server as inline SVG: no script, no CDN, so the admin works offline.

Each function takes plain numbers and labels and returns safe markup; every label is escaped.
"""

import math
from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SERIES_COLOURS = ("#417690", "#e09f3e", "#5b8c5a", "#b5485d")
NEGATIVE_COLOUR = "#b5485d"
_FONT = 'font-family="sans-serif" font-size="11" fill="currentColor"'


def _number(value) -> float:
    return float(value or 0)


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    # Safe: the body is built here from numbers and escaped labels only.
    return mark_safe(  # noqa: S308
        f'<svg class="lc-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above value, for readable axis ticks."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
    partial_last: bool = False,
) -> SafeString:
    """One line per series over the labels (e.g. spend and revenue per day), with a y axis and a legend.

    partial_last marks the last point as a period still running (today, so far), so its dip reads as
    unfinished rather than as a fall."""
    left, right, top, bottom = 56, 12, 24, 28
    plot_width, plot_height = width - left - right, height - top - bottom
    highest = _nice_ceiling(max((_number(v) for values in series.values() for v in values), default=0))
    count = max(len(labels), 1)

    def x(index: int) -> float:
        return left + (plot_width * index / (count - 1) if count > 1 else plot_width / 2)

    def y(value) -> float:
        return top + plot_height - plot_height * _number(value) / highest

    body = []
    for tick in range(5):
        value = highest * tick / 4
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ccc" '
            f'stroke-width="0.5"/><text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" {_FONT}>'
            f"{value:,.0f}</text>"
        )
    step = max(1, math.ceil(count / 7))  # at most seven date labels
    shown = list(range(0, len(labels), step))
    if shown and shown[-1] != len(labels) - 1:
        shown[-1] = len(labels) - 1  # the last day is always labelled, in place of its crowded neighbour
    for index in shown:
        # The end labels hang inwards, so the plot's edges never cut them.
        anchor = "start" if index == 0 and count > 1 else "end" if index == count - 1 and count > 1 else "middle"
        body.append(
            f'<text x="{x(index):.1f}" y="{height - 8}" text-anchor="{anchor}" {_FONT}>{escape(labels[index])}</text>'
        )
    if partial_last and count > 1:
        start = (x(count - 2) + x(count - 1)) / 2
        body.append(
            f'<rect class="partial-day" x="{start:.1f}" y="{top}" width="{x(count - 1) - start:.1f}" '
            f'height="{plot_height}" fill="#999" fill-opacity="0.15"/>'
            f'<text x="{x(count - 1):.1f}" y="{top - 4}" text-anchor="end" {_FONT}>today, so far</text>'
        )
    for number, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[number % len(SERIES_COLOURS)]
        points = " ".join(f"{x(index):.1f},{y(value):.1f}" for index, value in enumerate(values))
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        body.append(
            f'<rect x="{left + number * 130}" y="6" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + number * 130 + 14}" y="15" {_FONT}>{escape(name)}</text>'
        )
    return _svg(width, height, title, body)


def bar_chart(
    items: Sequence[tuple[str, Decimal | int | None, str]],
    *,
    title: str,
    width: int = 360,
    value_width: int = 70,
    bar_height: int = 18,
) -> SafeString:
    """Horizontal bars: (label, value, value as shown). Negative values (a losing ROI) grow left, in red;
    a missing value (None: nothing to divide by) gets no bar and its shown text."""
    label_width, gap = 110, 6
    plot_width = width - label_width - value_width
    values = [_number(value) for _, value, _ in items]
    lowest, highest = min([0.0, *values]), max([0.0, *values])
    span = (highest - lowest) or 1.0
    zero = label_width + plot_width * (-lowest / span)
    height = max(1, len(items)) * (bar_height + gap) + gap
    body = [f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="0" y2="{height}" stroke="#999" stroke-width="0.5"/>']
    for row, (label, value, shown) in enumerate(items):
        top = gap + row * (bar_height + gap)
        middle = top + bar_height / 2 + 4
        body.append(f'<text x="{label_width - 6}" y="{middle:.1f}" text-anchor="end" {_FONT}>{escape(label)}</text>')
        if value is not None:
            length = plot_width * abs(_number(value)) / span
            start = zero - length if _number(value) < 0 else zero
            colour = NEGATIVE_COLOUR if _number(value) < 0 else SERIES_COLOURS[0]
            body.append(
                f'<rect x="{start:.1f}" y="{top}" width="{max(length, 0.5):.1f}" height="{bar_height}" '
                f'fill="{colour}"/>'
            )
        body.append(f'<text x="{width - value_width + 6}" y="{middle:.1f}" {_FONT}>{escape(shown)}</text>')
    return _svg(width, height, title, body)


def funnel_chart(
    steps: Sequence[tuple[str, int, Decimal | float | None]],
    *,
    title: str,
    width: int = 440,
    bar_height: int = 22,
) -> SafeString:
    """A funnel of (stage, count, share of the stage before). Each bar is its stage-to-stage rate, so a
    0.7% click-to-lead step does not make every later stage a one-pixel sliver; the first stage is full."""
    label_width, value_width, gap = 80, 150, 6
    plot_width = width - label_width - value_width
    height = max(1, len(steps)) * (bar_height + gap) + gap
    body = []
    for row, (label, count, rate) in enumerate(steps):
        top = gap + row * (bar_height + gap)
        middle = top + bar_height / 2 + 4
        share = 1.0 if row == 0 else _number(rate)
        length = max(plot_width * min(share, 1.0), 3.0)  # a stage with any share stays visible
        shown = f"{count:,}" if row == 0 else f"{count:,} · {_percent(rate)} of {steps[row - 1][0].lower()}"
        body.append(
            f'<text x="{label_width - 6}" y="{middle:.1f}" text-anchor="end" {_FONT}>{escape(label)}</text>'
            f'<rect x="{label_width}" y="{top}" width="{length:.1f}" height="{bar_height}" '
            f'fill="{SERIES_COLOURS[0]}" fill-opacity="{1 - row * 0.12:.2f}"/>'
            f'<text x="{label_width + plot_width + 6}" y="{middle:.1f}" {_FONT}>{escape(shown)}</text>'
        )
    return _svg(width, height, title, body)


def _percent(rate) -> str:
    return "—" if rate is None else f"{_number(rate) * 100:,.1f}%"
