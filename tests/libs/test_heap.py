"""A started service sets its start-up heap aside: full collections no longer walk it."""

from __future__ import annotations

import gc

from dicomvault.lifecycle import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: tracked by the collector


def test_settled_objects_are_no_longer_walked_by_collections() -> None:
    before = Node()
    try:
        frozen = heap.settle()
        assert frozen == gc.get_freeze_count() > 0
        after = Node()
        tracked = {id(o) for o in gc.get_objects()}
        assert id(before) not in tracked  # set aside: a full collection skips it
        assert id(after) in tracked  # made since: still collected as usual
    finally:
        gc.unfreeze()
