"""The bottom layer: what every other layer may use and that knows nothing of SP-API.

Errors, durations and timestamps, path lookup, redaction, logging, the retry policy, YAML
loading and the field types of config models, and the shared Protocols and type aliases.
"""
