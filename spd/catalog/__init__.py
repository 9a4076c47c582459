"""What Amazon says: the operation catalog generated from its models (`models/`), the reviewed
table of rules its models state only in prose (`contract`), and checks of a request against
them (`params`). Imports only spd.core.
"""
