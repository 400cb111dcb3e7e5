"""Percentiles of durations that can be added up week by week: the rollups' number type.

A ``Sketch`` holds durations in seconds. Up to ``EXACT_UP_TO`` values it keeps them all and
its percentiles are exact: PostgreSQL's ``percentile_cont`` (linear interpolation between
the two nearest ranks). Beyond that it keeps counts in logarithmic bins, each 1 % wider
than the one below (from 0.01 s; one bin holds everything under 0.01 s): a value is known
to lie within its bin, so a percentile is off by less than 1 % of its value (plus 0.01 s).
That is the documented approximation of issue 15: exact percentiles of an arbitrary window
need every value in it, a million at the largest account, which no request can sort in
300 ms on our machines; bins add up in microseconds. tests/analytics/test_rollups.py holds
the bound against the direct computation on generated data.

Sketches merge (a window = its weeks), and serialise to small JSON for the rollup table.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import add

EXACT_UP_TO = 64
SMALLEST = 0.01  # seconds: the lower edge of bin 1
GROWTH = 1.01  # each bin is 1 % wider than the one below
_LOG_GROWTH = math.log(GROWTH)


def bin_of(seconds: float) -> int:
    """The bin a duration falls in: 0 below 0.01 s, then one per 1 % of growth."""
    if seconds < SMALLEST:
        return 0
    return 1 + int(math.log(seconds / SMALLEST) / _LOG_GROWTH)


def bin_edges(index: int) -> tuple[float, float]:
    """[lower, upper) of a bin, in seconds."""
    if index == 0:
        return 0.0, SMALLEST
    lower = SMALLEST * GROWTH ** (index - 1)
    return lower, lower * GROWTH


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Interpolate like PostgreSQL's percentile_cont over values sorted ascending."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    low = float(sorted_values[lower])
    if upper == lower:
        return low
    high = float(sorted_values[upper])
    return low + (high - low) * (position - lower)


class Sketch:
    """Durations (seconds): exact while small, 1 %-wide logarithmic bins beyond."""

    __slots__ = ("n", "values", "offset", "counts")

    def __init__(self) -> None:
        self.n = 0
        self.values: list[float] | None = []  # sorted; None once binned
        self.offset = 0  # the bin of counts[0]
        self.counts: list[int] = []

    # -- filling -------------------------------------------------------------------------

    @classmethod
    def of(cls, values: Sequence[float]) -> Sketch:
        """A sketch of many values at once (much faster than adding them one by one)."""
        sketch = cls()
        values = [max(0.0, float(value)) for value in values]
        sketch.n = len(values)
        if len(values) <= EXACT_UP_TO:
            sketch.values = sorted(values)
        else:
            sketch.values = None
            sketch._count_values(values)
        return sketch

    def add(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        self.n += 1
        if self.values is not None:
            insort(self.values, seconds)
            if len(self.values) > EXACT_UP_TO:
                self._to_bins()
            return
        self._count(bin_of(seconds), 1)

    def merge(self, other: Sketch) -> Sketch:
        """Add ``other``'s values into this sketch (in place); returns self."""
        if other.n == 0:
            return self
        both_exact = self.values is not None and other.values is not None
        if both_exact and len(self.values) + len(other.values) <= EXACT_UP_TO:
            self.values = sorted(self.values + other.values)
            self.n = len(self.values)
            return self
        if other.values is not None:
            self.n += other.n
            if self.values is not None:
                self.values.extend(other.values)
                self._to_bins()
            else:
                self._count_values(other.values)
            return self
        if self.values is not None:
            mine = self.values
            self.values, self.counts, self.offset = None, list(other.counts), other.offset
            self.n = other.n + len(mine)
            self._count_values(mine)
            return self
        self.n += other.n
        self._add_counts(other.offset, other.counts)
        return self

    @classmethod
    def merged(cls, sketches: Iterable[Sketch]) -> Sketch:
        """One sketch of many (a window of weeks): the same result as merging them one by
        one, but the bins are added column by column in one pass."""
        sketches = [sketch for sketch in sketches if sketch.n]
        exact = [
            value for sketch in sketches if sketch.values is not None for value in sketch.values
        ]
        binned = [sketch for sketch in sketches if sketch.values is None]
        if not binned:
            return cls.of(exact)
        result = cls()
        result.values = None
        result.n = sum(sketch.n for sketch in sketches)
        start = min(sketch.offset for sketch in binned)
        end = max(sketch.offset + len(sketch.counts) for sketch in binned)
        padded = [
            [0] * (sketch.offset - start)
            + sketch.counts
            + [0] * (end - sketch.offset - len(sketch.counts))
            for sketch in binned
        ]
        result.offset, result.counts = start, [sum(column) for column in zip(*padded, strict=True)]
        result._count_values(exact)
        return result

    def _to_bins(self) -> None:
        values, self.values = self.values or [], None
        self.counts, self.offset = [], 0
        self._count_values(values)

    def _count(self, index: int, count: int) -> None:
        self._add_counts(index, [count])

    def _count_values(self, values: Sequence[float]) -> None:
        """Count many values into the bins with one merge of the arrays."""
        if not values:
            return
        log, smallest, growth = math.log, SMALLEST, _LOG_GROWTH  # bin_of, inlined: hot
        bins = [0 if v < smallest else 1 + int(log(v / smallest) / growth) for v in values]
        lowest = min(bins)
        dense = [0] * (max(bins) - lowest + 1)
        for index in bins:
            dense[index - lowest] += 1
        self._add_counts(lowest, dense)

    def _add_counts(self, offset: int, counts: list[int]) -> None:
        if not counts:
            return
        if not self.counts:
            self.offset, self.counts = offset, list(counts)
            return
        start = min(self.offset, offset)
        end = max(self.offset + len(self.counts), offset + len(counts))
        if start < self.offset or end > self.offset + len(self.counts):
            self.counts = (
                [0] * (self.offset - start)
                + self.counts
                + [0] * (end - self.offset - len(self.counts))
            )
            self.offset = start
        at = offset - self.offset
        self.counts[at : at + len(counts)] = map(add, self.counts[at : at + len(counts)], counts)

    # -- reading -------------------------------------------------------------------------

    @property
    def is_exact(self) -> bool:
        return self.values is not None

    def percentiles(self, fractions: Iterable[float]) -> list[float | None]:
        """percentile_cont for each fraction; None for an empty sketch."""
        fractions = list(fractions)
        if self.n == 0:
            return [None for _ in fractions]
        if self.values is not None:
            return [percentile_cont(self.values, fraction) for fraction in fractions]
        cumulative = list(accumulate(self.counts))
        results = []
        for fraction in fractions:
            position = fraction * (self.n - 1)
            lower, upper = math.floor(position), math.ceil(position)
            low = self._value_at(lower, cumulative)
            high = low if upper == lower else self._value_at(upper, cumulative)
            results.append(low + (high - low) * (position - lower))
        return results

    def _value_at(self, rank: int, cumulative: list[int]) -> float:
        """The rank-th smallest value (0-based), placed evenly inside its bin."""
        at = bisect_right(cumulative, rank)  # the first bin whose running total passes rank
        count = self.counts[at]
        seen = cumulative[at] - count
        lower, upper = bin_edges(self.offset + at)
        return lower + (upper - lower) * (rank - seen + 0.5) / count

    def spread(self) -> Iterable[tuple[float, float, int]]:
        """(lower, upper, count) runs that hold the values: single values while exact."""
        if self.values is not None:
            for value in self.values:
                yield value, value, 1
            return
        for at, count in enumerate(self.counts):
            if count:
                lower, upper = bin_edges(self.offset + at)
                yield lower, upper, count

    # -- storage -------------------------------------------------------------------------

    def as_json(self) -> dict:
        if self.values is not None:
            return {"v": self.values}
        return {"n": self.n, "o": self.offset, "c": self.counts}

    @classmethod
    def from_json(cls, data: dict | None) -> Sketch:
        sketch = cls()
        if not data:
            return sketch
        if "v" in data:
            sketch.values = [float(value) for value in data["v"]]
            sketch.n = len(sketch.values)
        else:
            sketch.values, sketch.n = None, int(data["n"])
            sketch.offset, sketch.counts = int(data["o"]), list(data["c"])
        return sketch

    def __repr__(self) -> str:
        kind = "exact" if self.is_exact else "binned"
        return f"<Sketch n={self.n} {kind}>"
