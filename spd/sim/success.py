"""The 2xx status each SP-API operation answers on success, as Amazon's models declare it.

The simulator's own table (never spd's catalog or registry), so tests/test_sim_status.py can
judge it against the model files: only the operations it serves whose success is not 200.
"""

from __future__ import annotations

SUCCESS_STATUS: dict[str, int] = {
    # reports_2021-06-30.json, POST /reports/2021-06-30/reports, "responses":
    # {"202": {"description": "Success.", "schema": {"$ref": "#/definitions/CreateReportResponse"}}}
    "reports_2021-06-30.createReport": 202,
}


def success_status(op: str) -> int:
    """What a successful call of `op` answers: the model's 2xx (200 unless the table says)."""
    return SUCCESS_STATUS.get(op, 200)
