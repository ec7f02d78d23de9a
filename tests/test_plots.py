"""Report figures read back as pixels: the galleries put each thumbnail, sharp and whole, under its caption."""

from __future__ import annotations

import numpy as np
from PIL import Image

from foldwise.reporting.plots import GALLERY_CELL, gallery


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the True pixels."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def test_gallery_draws_each_thumbnail_sharp_under_its_caption(tmp_path):
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    checks = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)  # grayscale 8x8 checkerboard
    path = tmp_path / "gallery.png"
    gallery([red, blue, checks], ["id1\ntrue a\npred b 0.90", "id2", "id3"], path, "Mistakes", columns=2)

    png = np.asarray(Image.open(path).convert("RGB")).astype(int)
    cell_w, cell_h = GALLERY_CELL
    assert png.shape[:2] == (30 + 2 * cell_h, 2 * cell_w)
    top, left, height, width = box((png == [255, 0, 0]).all(-1))
    assert (height, width) == (128, 128) and (png[top : top + 128, left : left + 128] == [255, 0, 0]).all()
    assert left == (cell_w - 128) // 2 and 30 + 40 < top < 30 + cell_h - 128  # centred, below the caption's room
    caption = png[30 : top - 2, :cell_w]
    assert (caption.sum(-1) < 3 * 128).sum() > 50  # dark text above the picture
    blue_top, blue_left, *blue_size = box((png == [0, 0, 255]).all(-1))
    assert blue_size == [128, 128] and blue_top == top and blue_left >= cell_w
    white = (png == 255).all(-1)
    below_caption = 30 + cell_h + 46  # the caption ends 44 px into its cell, the picture starts at 48
    pictured = white[below_caption:, :cell_w] | (png[below_caption:, :cell_w] == 0).all(-1)
    squares_top, squares_left, squares_h, squares_w = box(~white[below_caption:, :cell_w])
    assert (squares_h, squares_w) == (136, 136) and pictured.all()  # 17 px per source pixel, black or white only
    block = png[below_caption + squares_top :, squares_left:][:17, :17]
    assert (block == block[0, 0]).all()  # one source pixel: one flat square, not interpolated
