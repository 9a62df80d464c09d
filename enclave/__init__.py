"""Enclave: a secure peer-to-peer messenger with no server in between."""

__version__ = "0.1.0"
