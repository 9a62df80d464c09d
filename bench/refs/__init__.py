"""The roles of bench/ref_worker.py, one module per kind of reference or peer."""
