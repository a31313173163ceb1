"""Every distinct base URL used to keep a Transport and its sockets for the life of the
process; now at most MAX_TRANSPORTS are kept and a dropped one's sockets are closed."""

from __future__ import annotations

from support.pack import pack_module

accounts = pack_module("host.accounts")
sites = pack_module("client.sites")


def pooled_connections(transport) -> int:
    return sum(len(adapter.poolmanager.pools) for adapter in set(transport.session.adapters.values()))


def test_transports_are_bounded_and_evicted_ones_are_closed(sim):
    bound = getattr(accounts, "MAX_TRANSPORTS", 8)  # (main had no bound at all)
    made = []
    for index in range(bound + 4):
        site = sites.resolve_site(base_url=f"{sim.base_url}/prefix-{index}")  # a distinct base URL each
        transport = accounts.transport_for(site)
        transport.session.get(sim.base_url + "/task/openapi/status", timeout=10).close()  # opens a socket
        assert pooled_connections(transport) == 1
        made.append(transport)
    assert len(accounts._transports) <= bound
    evicted, kept = made[:4], made[-bound:]
    assert [pooled_connections(t) for t in evicted] == [0] * 4
    assert all(pooled_connections(t) == 1 for t in kept)
    assert accounts.transport_for(made[-1].site) is made[-1]  # recently used: the same one
    again = accounts.transport_for(made[0].site)
    assert again is not made[0] and pooled_connections(again) == 0
    # a client still holding a dropped transport keeps working
    made[0].session.get(sim.base_url + "/task/openapi/status", timeout=10).close()
