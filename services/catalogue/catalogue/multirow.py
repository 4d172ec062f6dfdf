"""Multi-row statements without compiling each size: the n-row form derived from two
compilations.

The batch policy writes a fetch with ``INSERT … VALUES (…), (…), … ON CONFLICT …`` and reads
with ``SELECT … WHERE key IN (…)`` in a few sizes (powers of two, see ``bulk``). SQLAlchemy
takes 10–35 ms to compile one 128-row upsert, and a freshly started catalogue meets every
size in its first seconds of ingest: ~0.2 s of CPU on SQLite, a quarter of the catalogue's
CPU in a run of the ingest benchmark, paid again after every restart. ``statement`` compiles
each statement with one row (key) and with two, learns from the difference how a row is
written (``RowForm``), and writes any other size with a string join. When the two
compilations do not differ by exactly one row whose parameters follow the first row's (a
statement with parameters after its rows, an unknown parameter style), every size is
compiled by SQLAlchemy as before; tests/catalogue/test_multirow.py checks the derived text
against SQLAlchemy's for every statement and size the catalogue uses, on both dialects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

_NUMBERED = re.compile(r"\$(\d+)")  # asyncpg's positional parameters; SQLite's are "?"


@dataclass(frozen=True)
class RowForm:
    """A statement as ``head`` + rows + ``tail``: ``head`` ends with the first row, ``row``
    is the second (with its separator), its parameters numbered from ``width`` + 1 when the
    style numbers them."""

    head: str
    row: str
    tail: str
    width: int

    @classmethod
    def learn(cls, one: str, two: str, width: int) -> RowForm | None:
        """The form of a statement compiled with one row (``one``) and two (``two``), each
        row ``width`` parameters; None when ``two`` is not ``one`` with one more row."""
        start = len(os.path.commonprefix([one, two]))
        row = two[start:start + len(two) - len(one)]
        if width < 1 or not row or two[start + len(row):] != one[start:]:
            return None
        numbers = [int(n) for n in _NUMBERED.findall(row)]
        if "?" in row:
            if numbers or row.count("?") != width:
                return None
        elif numbers != list(range(width + 1, 2 * width + 1)):
            return None
        return cls(one[:start], row, one[start:], width)

    def sql(self, n: int) -> str:
        """The statement with ``n`` rows (n ≥ 1)."""
        return "".join([self.head, *(self._row(k * self.width) for k in range(n - 1)),
                        self.tail])

    def _row(self, shift: int) -> str:
        if not shift:
            return self.row
        return _NUMBERED.sub(lambda m: f"${int(m.group(1)) + shift}", self.row)


@dataclass(frozen=True)
class Statement:
    """One size of a statement: its SQL and the names of its first row's parameters in
    order (the parameters of every row are in that order)."""

    sql: str
    first_row: list[str]


_FORMS: dict[tuple, tuple[RowForm | None, list[str]]] = {}
_SIZES: dict[tuple, Statement] = {}


def statement(key: tuple, dialect: Dialect, build: Callable[[int], ClauseElement],
              n: int) -> Statement:
    """``build(n)`` for ``dialect``, cached under ``key`` and ``n``; ``key`` names the
    statement and must include the dialect's name."""
    found = _SIZES.get((*key, n))
    if found is None:
        form, first_row = _FORMS.get(key) or _learn(key, dialect, build)
        sql = form.sql(n) if form is not None else build(n).compile(dialect=dialect).string
        found = _SIZES[(*key, n)] = Statement(sql, first_row)
    return found


def _learn(key: tuple, dialect: Dialect,
           build: Callable[[int], ClauseElement]) -> tuple[RowForm | None, list[str]]:
    one, two = (build(m).compile(dialect=dialect) for m in (1, 2))
    names = list(one.positiontup or ())
    width = len(two.positiontup or ()) - len(names)
    learnt = _FORMS[key] = (RowForm.learn(one.string, two.string, width), names[:width])
    return learnt
