"""The configuration file (DESIGN.md §3): frozen models of every section, loading and the checks
that need the catalog, the object types and the emitters. Above spd.sources, spd.state,
spd.client and spd.emitters; below spd.pipeline and spd.app, which it describes.
"""
