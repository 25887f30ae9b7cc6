"""tracelog test suite."""
