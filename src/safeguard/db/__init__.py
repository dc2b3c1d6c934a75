"""PostgreSQL: the embedded default server, bootstrap of databases/roles/schemas, connections."""
