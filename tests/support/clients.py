"""A pack client pointed at a simulator, with retry delays short enough for tests."""

from __future__ import annotations

from .pack import pack_module


def make_client(sim, key_index: int = 0, **transport_kw):
    api = pack_module("client.api")
    credentials = pack_module("client.credentials")
    sites = pack_module("client.sites")
    transport = pack_module("client.transport")
    site = sites.resolve_site(base_url=sim.base_url)
    tr = transport.Transport(site, retry=transport.RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2),
                             timeouts=transport.Timeouts(connect=2, read=5, deadline=20), **transport_kw)
    return api.RunningHubClient(site, credentials.ApiKey(sim.keys[key_index]), transport=tr)
