"""Rollup sketches store their bin counts packed (analytics.sketch): convert stored rows.

A binned sketch was {"n", "o", "c": [counts]}; it becomes {"n", "o", "z": base64 of the
zlib-compressed little-endian unsigned 32-bit counts}. Exact sketches ({"v": values}) stay.
The numbers do not change. Self-contained: the code of the day is copied, not imported.
"""

import base64
import sys
import zlib
from array import array

from django.db import migrations


def _pack(counts: list[int]) -> str:
    packed = array("I", counts)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(zlib.compress(packed.tobytes())).decode("ascii")


def _unpack(text: str) -> list[int]:
    packed = array("I")
    packed.frombytes(zlib.decompress(base64.b64decode(text)))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def _sketches(data: dict):
    """Every sketch dict of a stored tally."""
    yield data.get("claim") or {}
    yield data.get("first_action") or {}
    for groups in ("by_mode", "by_claimer"):
        for group in (data.get(groups) or {}).values():
            yield group.get("first_action") or {}


def _convert(apps, *, forward: bool) -> None:
    WeeklyRollup = apps.get_model("analytics", "WeeklyRollup")
    for rollup in WeeklyRollup.objects.all().iterator(chunk_size=200):
        changed = False
        for sketch in _sketches(rollup.data or {}):
            if forward and "c" in sketch:
                sketch["z"] = _pack(sketch.pop("c"))
                changed = True
            elif not forward and "z" in sketch:
                sketch["c"] = _unpack(sketch.pop("z"))
                changed = True
        if changed:
            rollup.save(update_fields=["data"])


def pack_counts(apps, schema_editor) -> None:
    _convert(apps, forward=True)


def unpack_counts(apps, schema_editor) -> None:
    _convert(apps, forward=False)


class Migration(migrations.Migration):
    dependencies = [("analytics", "0003_weekly_rollups")]

    operations = [migrations.RunPython(pack_counts, unpack_counts, elidable=True)]
