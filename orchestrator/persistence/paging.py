"""One page of a listing, and where the next one starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """``next_cursor`` is opaque: pass it back to get the following page; ``None`` at the end.

    Cursors name the last row seen rather than an offset, so rows inserted while a client pages
    (new contacts arrive all the time) neither repeat nor push rows off the pages.
    """

    items: Sequence[T]
    next_cursor: str | None


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit is {limit}, expected at least 1")
