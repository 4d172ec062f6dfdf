"""``free_port`` hands out ports that an outgoing connection cannot take before the listener
binds them (below the ephemeral range), and never the same one twice."""

from __future__ import annotations

import socket

from dicomvault.bus import broker
from dicomvault.bus.broker import _ephemeral_low, free_port, share_ports


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = _ephemeral_low()
    assert low > 11024, "this machine's ephemeral range leaves no room below it"
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(low - 10000 <= p < low for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_processes_sharing_the_range_pick_disjoint_ports(monkeypatch) -> None:
    """Three processes (pytest-xdist workers) each take their own third of the range."""
    monkeypatch.setattr(broker, "_share", broker._share)
    picked = []
    for index in range(3):
        monkeypatch.setattr(broker, "_handed_out", set())
        share_ports(index, 3)
        picked.append({free_port() for _ in range(100)})
        assert all(p % 3 == index for p in picked[-1])
    assert not (picked[0] & picked[1] or picked[0] & picked[2] or picked[1] & picked[2])


def test_a_port_in_use_below_the_range_is_skipped(monkeypatch) -> None:
    """The first candidate is taken by a listener: the next free one is handed out."""
    busy, spare = free_port(), free_port()
    monkeypatch.setattr(broker, "_handed_out", set())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        candidates = iter([busy, spare])
        monkeypatch.setattr("random.Random.randrange", lambda self, a, b: next(candidates))
        assert free_port() == spare
