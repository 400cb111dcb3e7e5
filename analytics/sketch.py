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

Sketches merge (a window = its weeks), and serialise to small JSON for the rollup table:
the bin counts as one compressed array of unsigned 32-bit integers (little-endian, zlib,
base64), about 1 KB for a week of 8,600 handoffs. A window of a hundred weeks is merged
without a Python loop over bins: each week's array is read as one big integer whose
32-bit fields are the bins (``int.from_bytes``, in C), shifted to its first bin, and the
integers are added; a field only carries into the next past 4 billion handoffs in one bin.
"""

from __future__ import annotations

import base64
import math
import sys
import zlib
from array import array
from bisect import bisect_right, insort
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from operator import add

EXACT_UP_TO = 64
SMALLEST = 0.01  # seconds: the lower edge of bin 1
GROWTH = 1.01  # each bin is 1 % wider than the one below
_LOG_GROWTH = math.log(GROWTH)
FIELD_BITS = 32  # one bin's count in the packed form
assert array("I").itemsize * 8 == FIELD_BITS


def _pack(counts: Sequence[int]) -> bytes:
    """Counts as little-endian unsigned 32-bit integers."""
    packed = array("I", counts)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(raw: bytes) -> list[int]:
    packed = array("I")
    packed.frombytes(raw)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def bin_of(seconds: float) -> int:
    """The bin a duration falls in: 0 below 0.01 s, then one per 1 % of growth."""
    if seconds < SMALLEST:
        return 0
    return 1 + int(math.log(seconds / SMALLEST) / _LOG_GROWTH)


def bins_of(values: Iterable[float]) -> list[int]:
    """``bin_of`` of many values (the same arithmetic, inlined: the live weeks' hot loop)."""
    log, smallest, growth = math.log, SMALLEST, _LOG_GROWTH
    return [0 if v < smallest else 1 + int(log(v / smallest) / growth) for v in values]


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

    __slots__ = ("n", "values", "offset", "_counts", "_packed")

    def __init__(self) -> None:
        self.n = 0
        self.values: list[float] | None = []  # sorted; None once binned
        self.offset = 0  # the bin of counts[0]
        self._counts: list[int] | None = []
        # The same counts packed (``_pack``), as read from a rollup or made by a merge: a
        # list is only made from it when the sketch is read or changed.
        self._packed: bytes | None = None

    @property
    def counts(self) -> list[int]:
        """One count per bin from ``offset`` on (binned sketches; empty while exact)."""
        if self._counts is None:
            self._counts = _unpack(self._packed or b"")
            self._packed = None
        return self._counts

    @counts.setter
    def counts(self, counts: list[int]) -> None:
        self._counts, self._packed = counts, None

    def _as_integer(self) -> int:
        """The bins as one integer: bin i is bits [32 i, 32 i + 32)."""
        packed = self._packed if self._packed is not None else _pack(self._counts or ())
        return int.from_bytes(packed, "little") << (FIELD_BITS * self.offset)

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

    @classmethod
    def of_bins(cls, n: int, counts: Mapping[int, int]) -> Sketch:
        """A binned sketch of ``n`` values (more than ``EXACT_UP_TO``) from their bins'
        counts ({bin: count}): what ``of`` makes of the same values."""
        sketch = cls()
        sketch.values, sketch.n = None, n
        lowest = min(counts)
        dense = [0] * (max(counts) - lowest + 1)
        for index, count in counts.items():
            dense[index - lowest] = count
        sketch.offset, sketch.counts = lowest, dense
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
        # Every bin of every sketch added at once: the sum of their integers (``_as_integer``).
        total = sum(sketch._as_integer() for sketch in binned)
        lowest = ((total & -total).bit_length() - 1) // FIELD_BITS
        fields = -(-(total.bit_length() - lowest * FIELD_BITS) // FIELD_BITS)
        result.offset = lowest
        result._counts = None
        result._packed = (total >> (lowest * FIELD_BITS)).to_bytes(fields * 4, "little")
        result._count_values(exact)
        return result

    def minus(self, part: Sketch) -> Sketch | None:
        """This sketch without ``part``'s values (a part of the same values), or None when
        that cannot give what ``of`` would make of the rest: while exact (values are not
        subtracted here), or when 1 to ``EXACT_UP_TO`` values remain (bins do not hold them).
        """
        n = self.n - part.n
        if n < 0:
            return None
        if n == 0:
            return Sketch()
        if self.values is not None or n <= EXACT_UP_TO:
            return None
        if part.values is not None:
            removed = Counter(bins_of([max(0.0, value) for value in part.values]))
        else:
            removed = {part.offset + at: count for at, count in enumerate(part.counts) if count}
        counts = list(self.counts)
        for index, count in removed.items():
            at = index - self.offset
            if not 0 <= at < len(counts) or counts[at] < count:
                return None  # not a part of these values
            counts[at] -= count
        first = next(at for at, count in enumerate(counts) if count)
        last = len(counts) - next(at for at, count in enumerate(reversed(counts)) if count)
        rest = Sketch()
        rest.values, rest.n = None, n
        rest.offset, rest.counts = self.offset + first, counts[first:last]
        return rest

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
        bins = bins_of(values)
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
        """Exact: {"v": values}; binned: {"n", "o": first bin, "z": the packed counts}."""
        if self.values is not None:
            return {"v": self.values}
        packed = self._packed if self._packed is not None else _pack(self.counts)
        return {
            "n": self.n,
            "o": self.offset,
            "z": base64.b64encode(zlib.compress(packed)).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict | None) -> Sketch:
        sketch = cls()
        if not data:
            return sketch
        if "v" in data:
            sketch.values = [float(value) for value in data["v"]]
            sketch.n = len(sketch.values)
        else:
            sketch.values, sketch.n, sketch.offset = None, int(data["n"]), int(data["o"])
            sketch._counts, sketch._packed = None, zlib.decompress(base64.b64decode(data["z"]))
        return sketch

    def __repr__(self) -> str:
        kind = "exact" if self.is_exact else "binned"
        return f"<Sketch n={self.n} {kind}>"
