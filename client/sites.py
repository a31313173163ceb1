"""The two RunningHub sites. A key works only on the site that issued it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Site:
    name: str  # "cn", "ai", or "custom" for any other base URL (a proxy, the simulator)
    base_url: str

    @property
    def host(self) -> str:
        return urlparse(self.base_url).netloc or self.base_url

    def other_site_hint(self) -> str:
        """What to try when a key is refused here."""
        if self.name == "cn":
            return ("If the key was issued by runninghub.ai (the international site), "
                    "set the site to 'ai' (RUNNINGHUB_SITE=ai or the profile's site in settings).")
        if self.name == "ai":
            return ("If the key was issued by runninghub.cn, set the site to 'cn' "
                    "(RUNNINGHUB_SITE=cn or the profile's site in settings).")
        return ("Check that the key belongs to the service at this base URL "
                "(RUNNINGHUB_BASE_URL), or unset it to use runninghub.cn / runninghub.ai.")


SITES = {
    "cn": Site("cn", "https://www.runninghub.cn"),
    "ai": Site("ai", "https://www.runninghub.ai"),
}


def resolve_site(site: str | None = None, base_url: str | None = None) -> Site:
    """A base URL wins over a site name; the default site is `cn`, as in RunningHub's docs."""
    if base_url:
        parsed = urlparse(base_url)
        if parsed.username is not None or parsed.password is not None:  # shown in the panel, errors and logs
            raise ValueError("RunningHub base URL must not hold a user name or password (user:password@); got "
                             f"{parsed.scheme}://…@{parsed.netloc.rpartition('@')[2][:80]}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"RunningHub base URL must be http(s)://host[:port], got {base_url[:200]!r}")
        return Site("custom", base_url.rstrip("/"))
    name = (site or "cn").strip().lower()
    if name.startswith("http://") or name.startswith("https://"):
        return resolve_site(base_url=name)
    if name in ("www.runninghub.cn", "runninghub.cn"):
        name = "cn"
    if name in ("www.runninghub.ai", "runninghub.ai"):
        name = "ai"
    if name not in SITES:
        raise ValueError(f"Unknown RunningHub site {site!r}: use 'cn' (runninghub.cn), "
                         "'ai' (runninghub.ai) or a base URL.")
    return SITES[name]
