"""What spd polls: object types derived from the catalog plus spd's declarations (`type_table`),
their hooks, and reports as object types (`reports/`: report types, periods, documents). No I/O:
the pipeline fetches. Imports spd.catalog and spd.core; the simulator must never import it.
"""
