"""The SP-API client: LWA auth, token-bucket rate limits, retries (DESIGN.md §5, §6).

Nothing is re-exported here: importing a light module of the client (`data_elements`, which
the config models name) must not load aiohttp through `http`.
"""
