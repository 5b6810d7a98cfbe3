"""Geometry of the scene: cells of the object grid and the answer areas they fall in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of a square canvas split into ``grid_size`` x ``grid_size`` cells.

    The pixels left over by the integer cell size become a margin, split evenly on both sides.
    """

    canvas_size: int = 336
    grid_size: int = 9
    areas_per_side: int = 3

    @property
    def cell_px(self) -> int:
        return self.canvas_size // self.grid_size

    @property
    def margin(self) -> int:
        return (self.canvas_size - self.cell_px * self.grid_size) // 2

    @property
    def cells_per_area(self) -> int:
        return self.grid_size // self.areas_per_side

    def cell_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel (y, x) of a cell."""
        return self.margin + row * self.cell_px, self.margin + col * self.cell_px

    def area_of_cell(self, row: int, col: int) -> int:
        """Answer area (row-major from top left) of grid cell (row, col)."""
        k = self.cells_per_area
        return (row // k) * self.areas_per_side + (col // k)

    def cells_of_area(self, area: int) -> list[tuple[int, int]]:
        """The grid cells that make up an answer area, row-major."""
        k = self.cells_per_area
        ar, ac = divmod(area, self.areas_per_side)
        return [(ar * k + r, ac * k + c) for r in range(k) for c in range(k)]


def area_of_point(x: float, y: float, width: float, height: float, areas_per_side: int = 3) -> int:
    """Answer area of a point by thirds (or n-ths) of the image width and height.

    A point exactly on a dividing line belongs to the area below/right of it; points on the far
    border belong to the last area.
    """
    col = min(int(x * areas_per_side // width), areas_per_side - 1) if width > 0 else 0
    row = min(int(y * areas_per_side // height), areas_per_side - 1) if height > 0 else 0
    return max(row, 0) * areas_per_side + max(col, 0)
