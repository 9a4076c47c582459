"""Reports as object types (DESIGN.md §4): `report:REPORT_TYPE` pollers that create a report per
window, and `reports_2021-06-30.getReports` with `download: true` for reports Amazon generates
itself (settlements). Documents are downloaded, gunzipped, decoded and parsed as a stream."""
