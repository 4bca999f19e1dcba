"""A problem of a manifest, and how many of them a person is shown.

A campaign of 100,000 rows with one wrong column has 100,000 problems; a person reads a few lines. Up to
``MAX_LISTED`` problems are listed one per line. Beyond that, item problems of the same field and kind (the same
message but for the paths, names and numbers in it) are one line naming how many items, where they are
(``rows 1-3, 7``), and the first one's message; ``--verbose`` lists every problem.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

MAX_NAMED = 10  # columns, lines or rows a message names before "and N more"
MAX_LISTED = 20  # problems (or kinds of problems) listed before the rest are counted
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|\d+(\.\d+)?")  # quoted names, paths, numbers


@dataclass(frozen=True)
class Problem:
    where: str  # "item 'x' (line 3)", "model", "defaults", "manifest"
    field: str
    message: str
    entry: int | None = dataclasses.field(default=None, compare=False)  # index of the item's entry, for item problems
    # indexes of the entries a problem named once for several items is about (a misspelt column)
    entries: tuple[int, ...] = dataclasses.field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.where}, field {self.field!r}: {self.message}" if self.field else f"{self.where}: {self.message}"

    @property
    def place(self) -> str:
        """Where its item is written (``line 3``, ``row 7``), from ``where``; ``where`` itself for no item."""
        return self.where[self.where.rfind("(") + 1 : -1] if self.where.endswith(")") else self.where


def named_once(problems: Sequence[Problem], key: Callable[[Problem], Hashable | None]) -> list[Problem]:
    """Item problems of the same ``key`` as one problem, where the first was, naming every item's line or row
    and saying the first one's message; a problem whose key is None stays as it is."""
    groups: dict[Hashable, list[Problem]] = {}
    for p in problems:
        if p.entry is not None and (k := key(p)) is not None:
            groups.setdefault(k, []).append(p)
    out = []
    for p in problems:
        group = groups.get(key(p)) if p.entry is not None else None
        if group is None or len(group) == 1:
            out.append(p)
        elif group[0] is p:
            alike = all(q.message == p.message for q in group)
            message = p.message if alike else f"{p.message} (said of the first; the others alike)"
            where = f"{len(group)} items ({places([q.place for q in group])})"
            out.append(Problem(where, p.field, message, None, tuple(q.entry for q in group if q.entry is not None)))
    return out


def kind(problem: Problem) -> tuple[str, str]:
    """A problem's field and message without what varies from item to item."""
    return problem.field, without_particulars(problem.message)


def without_particulars(message: str) -> str:
    """``message`` with its paths, quoted names and numbers blanked: what messages of one kind share."""
    return _VARYING.sub("_", message)


def places(wheres: list[str]) -> str:
    """``rows 1-3, 7`` or ``lines 2, 5, 9``: where several items are, the first ``MAX_NAMED`` runs of them."""
    kind = wheres[0].split()[0]
    if not all(w.split()[0] == kind and w.split()[-1].isdigit() for w in wheres):
        return ", ".join(wheres[:MAX_NAMED]) + (
            f" and {len(wheres) - MAX_NAMED} more" if len(wheres) > MAX_NAMED else ""
        )
    numbers = [int(w.split()[-1]) for w in wheres]
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1 and kind == "row":
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:MAX_NAMED]]
    more = f" and {len(runs) - MAX_NAMED} more" if len(runs) > MAX_NAMED else ""
    return f"{kind}s {', '.join(text)}{more}"


def listed(problems: Sequence[Problem], verbose: bool = False) -> list[str]:
    """Lines for ``problems``: each one, or (more than ``MAX_LISTED``, not ``verbose``) each kind once."""
    shown = list(problems) if verbose or len(problems) <= MAX_LISTED else named_once(problems, kind)
    lines = [f"  - {p}" for p in (shown if verbose else shown[:MAX_LISTED])]
    if len(shown) > len(lines):
        lines.append(f"  - and {len(shown) - len(lines)} more kinds of problem")
    return lines


def problem_lines(header: str, problems: Sequence[Problem], verbose: bool = False, hint: str = "") -> list[str]:
    """``header``, then ``listed``; when some were summed up, ``hint`` (how to see each one)."""
    lines = [header, *listed(problems, verbose)]
    if hint and len(lines) - 1 < len(problems):
        lines.append(f"  ({hint})")
    return lines


def warning_lines(warnings: Sequence[Problem], verbose: bool = False, hint: str = "") -> list[str]:
    if not warnings:
        return []
    return problem_lines(f"{len(warnings)} warning(s), not errors:", warnings, verbose, hint)
