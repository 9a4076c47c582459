"""The proxy each request goes through, from the environment, looked up once per host.

spd honours the standard variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, lower case too, and
proxy credentials from the proxy URL or ~/.netrc) exactly as aiohttp's `trust_env=True` does,
but without its cost: with `trust_env` aiohttp reads the environment and ~/.netrc again in a
worker thread for every request (two thread hops per SP-API call). The environment of a running
process does not change, so the answer is kept per (scheme, host, port). `trust_env` also sent
~/.netrc credentials of the *target* host as Basic auth; spd never wants that (its requests
carry their own tokens, and a netrc password must not reach Amazon), so that part is left out.
"""

from __future__ import annotations

from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL


class EnvProxies:
    """The environment's proxy per origin, resolved on first use and kept. A proxy's
    credentials (from its URL or ~/.netrc) stay in its URL: aiohttp sends them as
    Proxy-Authorization, on the request to an http:// target or on the CONNECT of an https://
    one."""

    def __init__(self) -> None:
        self._proxies: dict[tuple[str, str | None, int | None], URL | None] = {}

    def proxy_for(self, url: URL) -> URL | None:
        """The proxy for `url`; None (direct) when NO_PROXY names its host or no variable is set."""
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            try:
                proxy, auth = get_env_proxy_for_url(url)
                if auth is not None:
                    proxy = proxy.with_user(auth.login).with_password(auth.password)
            except LookupError:  # bypassed by NO_PROXY, or no proxy for this scheme
                proxy = None
            self._proxies[key] = proxy
        return self._proxies[key]
