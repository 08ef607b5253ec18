"""HTTP API: routes, dependencies and the fixed error answers tests assert."""
