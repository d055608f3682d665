"""Table formats and catalogs the published lake is registered in."""
