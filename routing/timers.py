"""The engine's timers: one binary heap, plus lanes that make the frequent ones cheap.

Timers are tuples ``(when, seq, ...)`` ordered by time then by scheduling order, so the engine
fires them deterministically.  Most are cancelled before they fire (a contact answered before
its answer time-out, a target reached by an assignment first) and are dropped when they surface
(lazy deletion).  Two kinds of timer do not need a heap's O(log n):

* timers scheduled a **constant delay** after now (every answer time-out of a queue is the same
  number of seconds) are already in time order when kept first-in-first-out: one deque per
  delay pushes and pops in O(1);
* **rare** timers that would otherwise sit in the heap for hours (one end-of-shift protection
  per agent: 20,000 entries at 20,000 agents) keep their own heap, so the busy heap stays small.

``peek`` and ``pop_due`` look at every lane's head; there are few lanes (one per distinct
answer time-out, plus two heaps).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry", bound=tuple[Any, ...])  # (when, seq, ...)


class TimerQueue(Generic[Entry]):
    def __init__(self, live: Callable[[Entry], bool]) -> None:
        self._live = live
        self._heap: list[Entry] = []
        self._rare: list[Entry] = []
        self._lanes: dict[float, deque[Entry]] = {}

    def __len__(self) -> int:
        """Timers held, dead ones not yet dropped included (a memory figure)."""
        return len(self._heap) + len(self._rare) + sum(map(len, self._lanes.values()))

    def push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, entry)

    def push_rare(self, entry: Entry) -> None:
        heapq.heappush(self._rare, entry)

    def push_after(self, delay: float, entry: Entry) -> None:
        """``entry[0]`` must be now + ``delay``, with now never going back between calls."""
        lane = self._lanes.get(delay)
        if lane is None:
            lane = self._lanes[delay] = deque()
        lane.append(entry)

    def peek(self) -> Entry | None:
        """The earliest live timer, dead ones at the heads being dropped on the way."""
        best: Entry | None = None
        for heap in (self._heap, self._rare):
            while heap and not self._live(heap[0]):
                heapq.heappop(heap)
            if heap and (best is None or heap[0][:2] < best[:2]):
                best = heap[0]
        for lane in self._lanes.values():
            while lane and not self._live(lane[0]):
                lane.popleft()
            if lane and (best is None or lane[0][:2] < best[:2]):
                best = lane[0]
        return best

    def pop_due(self, now: float) -> Entry | None:
        """Remove and return the earliest live timer due by ``now``, if any."""
        head = self.peek()
        if head is None or head[0] > now:
            return None
        for heap in (self._heap, self._rare):
            if heap and heap[0] is head:
                return heapq.heappop(heap)
        for lane in self._lanes.values():
            if lane and lane[0] is head:
                return lane.popleft()
        raise AssertionError("the head of a lane vanished")  # pragma: no cover
