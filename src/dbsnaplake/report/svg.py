"""Just enough SVG for the run report's plots: a canvas of rectangles, lines, dots and text, scales from values to
pixels, round tick values, and axes drawn with them.

Plain string building, no plotting library: matplotlib cost about 2 CPU-seconds per report (0.6 s to import, 1.8 s
to draw five figures), a sixth of a small run. Text stays ``<text>`` (searchable in the browser). Every text and
tooltip goes through :func:`clean`, so values from the data (a partition value may hold ``<``, ``&``, quotes,
control characters, any Unicode) never break the markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH = 960.0
"""Pixels (of the viewBox); every figure is as wide, so the page lines them up."""
FONT = 12.0
SMALL = 11.0
TEXT_COLOR = "#222222"
MUTED_COLOR = "#666666"
AXIS_COLOR = "#444444"
CHAR_WIDTH = 0.6
"""A sans-serif character's average width, in font sizes: how much room a label needs, roughly."""
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """``text`` as XML character data: ``<``, ``>``, ``&`` and quotes escaped, and the characters XML cannot hold
    at all (control characters, lone surrogates) replaced by U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text), {'"': "&quot;", "'": "&#x27;"})


def text_width(text: str, size: float = FONT) -> float:
    return len(text) * size * CHAR_WIDTH


def _value(value: object) -> str:
    return f"{value:.1f}".removesuffix(".0") if isinstance(value, float) else str(value)


def _attributes(attributes: dict[str, object]) -> str:
    """``name="value"`` pairs; ``stroke_width`` is written ``stroke-width``; ``None`` values are left out."""
    return "".join(
        f" {name.replace('_', '-')}={quoteattr(_value(value))}"
        for name, value in attributes.items()
        if value is not None
    )


class Canvas:
    """One figure: shapes and text added in drawing order (later on top), then :meth:`to_svg`."""

    def __init__(self, height: float, width: float = WIDTH) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = []

    def _add(self, tag: str, attributes: dict[str, object], content: str = "") -> None:
        self.parts.append(
            f"<{tag}{_attributes(attributes)}>{content}</{tag}>" if content else f"<{tag}{_attributes(attributes)}/>"
        )

    def rect(self, x: float, y: float, width: float, height: float, fill: str, tip: str = "", **style: object) -> None:
        """A rectangle; ``tip`` is shown when the pointer rests on it."""
        box = {"x": x, "y": y, "width": max(width, 0.0), "height": max(height, 0.0), "fill": fill}
        self._add("rect", box | style, _tip(tip))

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = AXIS_COLOR, **style: object) -> None:
        self._add("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": stroke} | style)

    def dot(self, x: float, y: float, radius: float, fill: str, tip: str = "") -> None:
        self._add("circle", {"cx": x, "cy": y, "r": radius, "fill": fill}, _tip(tip))

    def text(
        self, x: float, y: float, text: str, size: float = FONT, anchor: str = "start", middle: bool = False,
        **style: object,
    ) -> None:  # fmt: skip
        """``text`` with its baseline at ``y`` (centred on ``y`` if ``middle``), starting, centred (``anchor=
        "middle"``) or ending (``"end"``) at ``x``."""
        place = {"x": x, "y": y, "font_size": size, "text_anchor": anchor if anchor != "start" else None}
        self._add("text", place | {"dy": "0.35em" if middle else None, "fill": TEXT_COLOR} | style, clean(text))

    def to_svg(self) -> str:
        """The ``<svg>`` element: this size, scaled to the page's width by the browser (its viewBox)."""
        width, height = _value(self.width), _value(self.height)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" font-family="sans-serif">' + "".join(self.parts) + "</svg>"
        )


def _tip(tip: str) -> str:
    return f"<title>{clean(tip)}</title>" if tip else ""


@dataclass(frozen=True)
class Scale:
    """From values (``low`` .. ``high``, on a log scale if ``log``) to pixels (``start`` .. ``end``)."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        if self.log:
            low, high, value = math.log(self.low), math.log(self.high), math.log(max(value, self.low))
        else:
            low, high = self.low, self.high
        share = (value - low) / (high - low) if high > low else 0.0
        return self.start + share * (self.end - self.start)


def round_ticks(high: float, count: int = 5, whole: bool = False) -> list[float]:
    """From 0 to just past ``high`` in about ``count`` steps of 1, 2, 2.5 or 5 times a power of ten (of at least 1
    if ``whole``): 0, 10, 20, 30, 40 for 38.7."""
    if high <= 0:
        return [0.0, 1.0]
    rough = high / count
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough * (1 - 1e-9))
    step = max(step, 1.0) if whole else step
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def size_ticks(high: float, count: int = 4) -> list[float]:
    """Round byte sizes from 0 to just past ``high``, in the largest unit (KiB, MiB, ...) below it: 0, 100 MiB,
    200 MiB, 300 MiB for 340 MiB."""
    unit = 1024.0 ** min(4, max(0, math.floor(math.log(high, 1024)))) if high >= 1 else 1.0
    return [tick * unit for tick in round_ticks(high / unit, count)]


def power_of_two_ticks(low: float, high: float, most: int = 10) -> list[float]:
    """Powers of 2 from ``low`` to ``high`` (for a log axis of sizes: 1 KiB, 2 KiB, 4 KiB ...), every second or
    fourth one if there would be more than ``most`` (the two ends if there is none)."""
    exponents = list(range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1))
    stride = 1
    while len(exponents[::stride]) > most:
        stride *= 2
    return [2.0**e for e in exponents[::stride]] or [low, high]


def count_ticks(high: float) -> list[float]:
    """Round whole numbers from 0 to just past ``high``, for counts."""
    return round_ticks(high, whole=True)


def count_label(value: float) -> str:
    """A record count, short: 0, 250, 2.5k, 17.5M."""
    for suffix, unit in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= unit:
            return f"{value / unit:g}{suffix}"
    return f"{value:g}"


def x_axis(
    canvas: Canvas, scale: Scale, y: float, ticks: Sequence[float], label: Callable[[float], str], title: str = ""
) -> None:
    """The axis line at height ``y``, a tick and its label (if any) at each of ``ticks``, the axis ``title`` below."""
    canvas.line(scale.start, y, scale.end, y)
    for tick in ticks:
        x = scale(tick)
        canvas.line(x, y, x, y + 4)
        if label(tick):
            canvas.text(x, y + 16, label(tick), anchor="middle")
    if title:
        canvas.text((scale.start + scale.end) / 2, y + 32, title, anchor="middle")


def y_axis(
    canvas: Canvas, scale: Scale, x: float, ticks: Sequence[float], label: Callable[[float], str], title: str = ""
) -> None:
    """The axis line at ``x``, a tick and its label at each of ``ticks``, and the axis ``title`` turned upright."""
    canvas.line(x, scale.start, x, scale.end)
    for tick in ticks:
        y = scale(tick)
        canvas.line(x - 4, y, x, y)
        canvas.text(x - 7, y, label(tick), anchor="end", middle=True)
    if title:
        width = max((text_width(label(t), SMALL) for t in ticks), default=0.0)
        middle, left = (scale.start + scale.end) / 2, x - width - 16
        canvas.text(left, middle, title, anchor="middle", transform=f"rotate(-90 {_value(left)} {_value(middle)})")


def title(canvas: Canvas, x: float, y: float, text: str) -> None:
    """A plot's title, bold, its baseline at ``y``."""
    canvas.text(x, y, text, 14.0, font_weight="bold")


def legend(canvas: Canvas, x: float, y: float, entries: Sequence[tuple[str, str, str]], right: bool = False) -> None:
    """A mark and a label per ``(mark, colour, label)`` (mark: ``"bar"``, ``"dot"`` or ``"dashed"`` line), one line
    each, in a white box whose top-left corner (top-right if ``right``) is at ``(x, y)``."""
    width = 28 + max(text_width(label, SMALL) for _, _, label in entries)
    left = x - width if right else x
    canvas.rect(left, y, width, 18 * len(entries) + 6, "white", stroke="#cccccc", fill_opacity=0.9)
    for i, (mark, color, label) in enumerate(entries):
        middle = y + 12 + 18 * i
        if mark == "dot":
            canvas.dot(left + 12, middle, 3.5, color)
        elif mark == "dashed":
            canvas.line(left + 4, middle, left + 20, middle, color, stroke_dasharray="4 3")
        else:
            canvas.rect(left + 4, middle - 5, 16, 10, color)
        canvas.text(left + 24, middle, label, SMALL, middle=True)
