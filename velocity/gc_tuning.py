"""The web process's garbage collector: what the app loaded at startup is frozen out of it.

Python's collector of reference cycles walks every tracked object of the oldest generation on each full
collection: in a web process that is Django, DRF, Channels and the app, hundreds of thousands of objects that
live as long as the process. Each full collection then paused a request thread for tens of milliseconds, and
under 16 concurrent clients listing sessions those pauses were the tail (p99 181, 179, 247 ms without, 124,
114, 109 with, in alternating runs: docs/benchmarks.md, *REST under load, third round*). ``gc.freeze()``
moves everything alive at that moment into a permanent generation the collector never walks; what requests
allocate is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then freeze what survived; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
