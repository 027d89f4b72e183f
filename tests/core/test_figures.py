"""Labelled figures: sizes, where panels and labels land, and bad layouts refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylegram.core.figures import Box, FigureStyle, panel_grid, panel_row

COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 210), (220, 200, 20), (20, 200, 200), (160, 40, 160)]


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (20, 10)) -> Image.Image:
    return Image.new("RGB", size, colour)


def region(img: Image.Image, box: Box) -> np.ndarray:
    return np.asarray(img.crop(box))


def dark_pixels(img: Image.Image, box: Box) -> int:
    return int((region(img, box).max(axis=2) < 128).sum())


def test_row_size_and_panels_land_where_reported() -> None:
    style = FigureStyle(gap=8, font_size=12)
    fig = panel_row([solid(c) for c in COLOURS[:3]], ["a", "b", "c"], style=style)
    assert len(fig.panels) == 3 and len(fig.labels) == 3
    assert fig.image.width == 8 + 3 * (20 + 8)
    for box, colour in zip(fig.panels, COLOURS, strict=False):
        assert box[2] - box[0] == 20 and box[3] - box[1] == 10
        assert (region(fig.image, box) == colour).all()
    # Panels in one row, left to right, one gap apart.
    assert [b[1] for b in fig.panels] == [8, 8, 8]
    assert [b[0] for b in fig.panels] == [8, 36, 64]
    # Labels sit under their panels, inside the sheet, and hold ink.
    for panel, label in zip(fig.panels, fig.labels, strict=True):
        assert label[1] >= panel[3] and label[0] == panel[0] and label[3] <= fig.image.height
        assert dark_pixels(fig.image, label) > 0
    assert fig.image.height == fig.labels[0][3] + 8


def test_row_background_is_blank_outside_panels_and_labels() -> None:
    fig = panel_row([solid(c) for c in COLOURS[:2]], ["relu1_1", "relu1_1…relu5_1"], style=FigureStyle(gap=6))
    pixels = np.asarray(fig.image).copy()
    for left, top, right, bottom in (*fig.panels, *fig.labels):
        pixels[top:bottom, left:right] = 255
    assert (pixels == 255).all(), "something was drawn outside the panel and label boxes"


def test_long_label_shrinks_to_its_panel_width() -> None:
    fig = panel_row([solid(COLOURS[0], (100, 40))], ["relu1_1…relu5_1"], style=FigureStyle(gap=4, font_size=24))
    label = fig.labels[0]
    assert label[2] - label[0] == 100
    assert fig.image.width == 4 + 100 + 4  # the text shrank instead of widening the sheet
    ink = np.asarray(fig.image)[label[1]:label[3]].max(axis=2) < 128  # the label band, full width
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.size and columns.min() >= label[0] and columns.max() < label[2]


def test_label_too_long_even_at_the_smallest_size_widens_its_column() -> None:
    text = "a rather long label for a narrow panel"
    fig = panel_row([solid(COLOURS[0], (40, 40))], [text], style=FigureStyle(gap=4))
    panel, label = fig.panels[0], fig.labels[0]
    assert label[2] - label[0] > 40 and fig.image.width == label[2] + 4
    assert panel[2] - panel[0] == 40 and abs((panel[0] - label[0]) - (label[2] - panel[2])) <= 1  # centred


def test_panels_are_scaled_to_one_height_keeping_aspect() -> None:
    fig = panel_row([solid(COLOURS[0], (40, 20)), solid(COLOURS[1], (10, 10))], ["wide", "square"], height=30)
    (l0, t0, r0, b0), (l1, t1, r1, b1) = fig.panels
    assert (r0 - l0, b0 - t0) == (60, 30)
    assert (r1 - l1, b1 - t1) == (30, 30)


def test_grid_layout_row_and_column_labels() -> None:
    rows = [[solid(COLOURS[3 * i + j]) for j in range(3)] for i in range(2)]
    gap = 8
    fig = panel_grid(rows, ["depth 1", "depth 5"], ["1e-4", "1e-3", "1e-2"], title="trade-off",
                     style=FigureStyle(gap=gap))
    assert len(fig.panels) == 6 and len(fig.labels) == 3 + 2 + 1
    for k, box in enumerate(fig.panels):
        assert (region(fig.image, box) == COLOURS[k]).all()
    col_labels, row_labels, title = fig.labels[:3], fig.labels[3:5], fig.labels[5]
    # Row-major panels: same top along a row, same left down a column, one gap apart.
    assert fig.panels[0][1] == fig.panels[2][1] and fig.panels[3][1] == fig.panels[0][1] + 10 + gap
    assert fig.panels[0][0] == fig.panels[3][0]
    for j, label in enumerate(col_labels):  # above their column, below the title
        assert label[3] <= fig.panels[j][1] and label[1] >= title[3]
        assert dark_pixels(fig.image, label) > 0
    for i, label in enumerate(row_labels):  # left of their row
        assert label[2] <= fig.panels[3 * i][0] and label[1] == fig.panels[3 * i][1]
        assert dark_pixels(fig.image, label) > 0
    assert dark_pixels(fig.image, title) > 0
    assert fig.image.size == (fig.panels[-1][2] + gap, fig.panels[-1][3] + gap)


def test_grid_without_labels_is_just_panels() -> None:
    fig = panel_grid([[solid(COLOURS[0])], [solid(COLOURS[1])]], style=FigureStyle(gap=2))
    assert fig.labels == ()
    assert fig.image.size == (2 + 20 + 2, 2 + 2 * (10 + 2))


@pytest.mark.parametrize(
    ("rows", "row_labels", "column_labels", "message"),
    [
        ([], (), (), "at least one panel"),
        ([[solid(COLOURS[0])], []], (), (), "same number of panels"),
        ([[solid(COLOURS[0])]], (), ("a", "b"), "2 column labels for 1 columns"),
        ([[solid(COLOURS[0])]], ("a", "b"), (), "2 row labels for 1 rows"),
    ],
)
def test_bad_layouts_are_refused(
    rows: list[list[Image.Image]], row_labels: tuple[str, ...], column_labels: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        panel_grid(rows, row_labels, column_labels)


def test_row_needs_one_label_per_panel_and_sane_style() -> None:
    with pytest.raises(ValueError, match="1 labels for 2 panels"):
        panel_row([solid(COLOURS[0]), solid(COLOURS[1])], ["only one"])
    with pytest.raises(ValueError, match="gap"):
        FigureStyle(gap=-1)
    with pytest.raises(ValueError, match="font size"):
        FigureStyle(font_size=3)
