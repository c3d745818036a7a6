"""The `c360` command line: one module per command group, registered in `main`."""
