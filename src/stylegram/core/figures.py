"""Labelled figures composed with PIL: a row of panels (the paper's Figure 1) and a grid (its Figure 3).

Panels are scaled to one height, keeping their aspect ratios, and laid out on a white sheet with a gap around
each. Labels use the font that ships with Pillow (``ImageFont.load_default``), so figures look the same on every
machine without system fonts; a label too wide for its panel is drawn in a smaller size rather than clipped.

Every function returns a :class:`Figure`: the image and the boxes of its panels and labels, so callers (and
tests) know where each panel landed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right and bottom exclusive, as PIL crops
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

MIN_FONT_SIZE = 8


@dataclass(frozen=True)
class FigureStyle:
    """Spacing and type of a figure; the defaults suit panels of 128–512 px."""

    gap: int = 8  # pixels between panels and around the sheet
    font_size: int = 14
    background: tuple[int, int, int] = (255, 255, 255)
    ink: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.gap < 0:
            raise ValueError(f"gap must be >= 0, got {self.gap}")
        if self.font_size < MIN_FONT_SIZE:
            raise ValueError(f"font size must be >= {MIN_FONT_SIZE}, got {self.font_size}")


@dataclass(frozen=True)
class Figure:
    image: Image.Image
    panels: tuple[Box, ...]  # row-major, one per panel given
    labels: tuple[Box, ...]  # column (or panel) labels first, then row labels, then the title if any


def font(size: int) -> Font:
    """Pillow's bundled font at ``size`` px (a scalable one since Pillow 10.1; the old bitmap font before)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sizes; its bitmap font still draws ASCII labels
        return ImageFont.load_default()


def _text_size(text: str, f: Font) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=f)
    return int(right - left), int(bottom - min(top, 0))


def _fitting_font(text: str, width: int, size: int) -> Font:
    """The largest font no bigger than ``size`` in which ``text`` fits ``width`` (the smallest if none does)."""
    while size > MIN_FONT_SIZE and _text_size(text, font(size))[0] > width:
        size -= 1
    return font(size)


def _line_height(labels: Sequence[str], style: FigureStyle) -> int:
    """Height of a band of labels: the tallest of them at the full font size (they only ever shrink)."""
    f = font(style.font_size)
    return max((_text_size(t or "Ag", f)[1] for t in labels), default=0)


def _scaled(img: Image.Image, height: int) -> Image.Image:
    width = max(1, round(img.width * height / img.height))
    if (width, height) == img.size:
        return img.convert("RGB")
    return img.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _check(rows: Sequence[Sequence[Image.Image]], row_labels: Sequence[str], column_labels: Sequence[str]) -> None:
    if not rows or not rows[0]:
        raise ValueError("a figure needs at least one panel")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"every row needs the same number of panels, got {sorted(widths)}")
    if column_labels and len(column_labels) != len(rows[0]):
        raise ValueError(f"{len(column_labels)} column labels for {len(rows[0])} columns")
    if row_labels and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")


def panel_grid(
    rows: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str] = (),
    column_labels: Sequence[str] = (),
    *,
    title: str | None = None,
    height: int | None = None,
    labels_below: bool = False,
    style: FigureStyle | None = None,
) -> Figure:
    """A grid of panels with column labels (above, or below with ``labels_below``) and row labels on the left.

    ``height`` is each panel's height in pixels (default: the first panel's); columns are as wide as their
    widest panel (or their label at the smallest font size) and panels are centred in their cells. Labels
    may hold newlines.
    """
    s = style or FigureStyle()
    _check(rows, row_labels, column_labels)
    h = height or rows[0][0].height
    cells = [[_scaled(im, h) for im in row] for row in rows]
    col_w = [max(row[j].width for row in cells) for j in range(len(cells[0]))]
    if column_labels:  # a label that would not fit even at the smallest size widens its column instead
        col_w = [max(w, _text_size(t, font(MIN_FONT_SIZE))[0]) for w, t in zip(col_w, column_labels, strict=True)]
    f = font(s.font_size)
    row_w = max((_text_size(t, f)[0] for t in row_labels), default=0)
    left0 = s.gap + (row_w + s.gap if row_labels else 0)
    band = _line_height(column_labels, s) + s.gap if column_labels else 0
    title_h = _text_size(title, f)[1] + s.gap if title else 0
    top0 = s.gap + title_h + (0 if labels_below else band)
    sheet_w = left0 + sum(w + s.gap for w in col_w)
    sheet_h = top0 + len(cells) * (h + s.gap) + (band if labels_below else 0)
    sheet = Image.new("RGB", (sheet_w, sheet_h), s.background)
    draw = ImageDraw.Draw(sheet)

    lefts = [left0 + sum(w + s.gap for w in col_w[:j]) for j in range(len(col_w))]
    panels: list[Box] = []
    for i, row in enumerate(cells):
        top = top0 + i * (h + s.gap)
        for j, im in enumerate(row):
            x = lefts[j] + (col_w[j] - im.width) // 2
            sheet.paste(im, (x, top))
            panels.append((x, top, x + im.width, top + h))
    labels: list[Box] = []
    label_top = top0 + len(cells) * (h + s.gap) if labels_below else s.gap + title_h
    for j, text in enumerate(column_labels):
        box = (lefts[j], label_top, lefts[j] + col_w[j], label_top + band - s.gap)
        labels.append(_draw_label(draw, text, box, s))
    for i, text in enumerate(row_labels):
        top = top0 + i * (h + s.gap)
        labels.append(_draw_label(draw, text, (s.gap, top, s.gap + row_w, top + h), s))
    if title:
        labels.append(_draw_label(draw, title, (s.gap, s.gap, sheet_w - s.gap, s.gap + title_h - s.gap), s))
    return Figure(sheet, tuple(panels), tuple(labels))


def panel_row(
    panels: Sequence[Image.Image],
    labels: Sequence[str],
    *,
    title: str | None = None,
    height: int | None = None,
    style: FigureStyle | None = None,
) -> Figure:
    """One row of panels with a label under each, as in the paper's Figure 1."""
    if len(labels) != len(panels):
        raise ValueError(f"{len(labels)} labels for {len(panels)} panels")
    return panel_grid([list(panels)], (), labels, title=title, height=height, labels_below=True, style=style)


def _draw_label(draw: ImageDraw.ImageDraw, text: str, box: Box, style: FigureStyle) -> Box:
    """Draw ``text`` centred in ``box`` (shrinking it to fit the width); returns the box."""
    left, top, right, bottom = box
    f = _fitting_font(text, right - left, style.font_size)
    w, h = _text_size(text, f)
    x, y = left + (right - left - w) / 2, top + (bottom - top - h) / 2
    draw.multiline_text((x, y), text, fill=style.ink, font=f, align="center")
    return box
