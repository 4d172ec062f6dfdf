"""The start-up heap, set aside once a service is up.

Everything a service builds while starting (modules, pydicom's data dictionary, SQLAlchemy's
mappers, protobuf descriptors: about 110,000 objects in a gateway worker) lives as long as the
process. Python's cyclic garbage collector would walk all of it on every full collection:
~70 ms holding the GIL on this project's 2-core reference machine, during which every
association of the process stalls (pynetdicom also forces one full collection per 60 turns
of its accept loop). ``settle`` collects once and freezes what is left, so later collections
walk only what was made since.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then move every surviving object to the permanent generation; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
