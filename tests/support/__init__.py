"""Helpers shared by the tests (and, for the node processes, by bench/)."""
