"""Rich tables whose cells wrap only between words (identifiers stay whole at 80 columns)."""

from __future__ import annotations

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

__all__ = ["fit_columns", "print_table"]


def _plain(cell: object) -> str | None:
    """A cell's text as shown (markup removed), or None for a renderable that is not text."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return None


def _widths(texts: list[str]) -> tuple[int, int]:
    """(longest word, longest line) of a column's texts, in terminal cells."""
    words = [Text(word).cell_len for text in texts for word in text.split()]
    lines = [Text(line).cell_len for text in texts for line in text.splitlines()]
    return max(words, default=1), max(lines, default=1)


def _share(extra: int, need: list[int]) -> list[int]:
    """Split ``extra`` cells over columns lacking ``need`` cells: smallest need first, in full.

    Short headers and numbers then stay on one line (fewest columns wrapped); the columns whose
    need no longer fits share what is left equally.
    """
    give = [0] * len(need)
    order = sorted(range(len(need)), key=lambda i: need[i])
    for k, i in enumerate(order):
        if need[i] > extra:
            rest = order[k:]
            for j, r in enumerate(rest):
                give[r] = extra // len(rest) + (j < extra % len(rest))
            break
        give[i] = need[i]
        extra -= need[i]
    return give


def fit_columns(table: Table, width: int) -> Table:
    """Give every column of ``table`` at least its longest word, the rest of ``width`` by need.

    rich narrows the widest columns first, to any width, so at 80 columns identifiers were split
    mid-word (``challeng`` / ``er``, ``2026-11`` / ``-30``) or cut (``bcistream-de…``). Here each
    column starts at its longest word (header included) and the cells left over go first, in full,
    to the columns that lack least for their longest line (`_share`); cells wrap at spaces only. When
    even the longest words do not fit in ``width``, rich lays the table out itself with
    ``overflow="fold"``: a value is folded onto more lines, never cut.

    Parameters
    ----------
    table : rich.table.Table
        Filled with its rows; its columns' ``width`` and ``overflow`` are set in place.
    width : int
        Terminal cells available (the console's width).

    Returns
    -------
    rich.table.Table
        ``table`` itself.
    """
    _, right, _, left = Padding.unpack(table.padding)
    pad = left + right
    borders = ((2 if table.show_edge else 0) + len(table.columns) - 1) if table.box else 0
    measured = []
    for column in table.columns:
        column.overflow = "fold"
        texts = [_plain(cell) for cell in (column.header, *column.cells)]
        if any(text is None for text in texts):
            return table  # a renderable we cannot measure: rich decides alone
        measured.append(_widths([t for t in texts if t is not None]))
    least = [word + pad for word, _ in measured]
    most = [max(word, line) + pad for word, line in measured]
    room = width - borders
    if sum(most) <= room or sum(least) > room:
        return table
    give = _share(room - sum(least), [m - n for n, m in zip(least, most, strict=True)])
    for column, n, extra in zip(table.columns, least, give, strict=True):
        column.width = n + extra - pad
    return table


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` on ``console`` with `fit_columns` at the console's width."""
    console.print(fit_columns(table, console.width))
