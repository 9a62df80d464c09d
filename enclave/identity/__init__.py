"""Who you are: the identity key, its password and the home folder that holds them.

- ``home``: where a home folder is, its files and their permissions (standard library
  only, so ``enclave --help`` stays light).
- ``keys``: the RSA-4096 identity, password-protected on disk; peer public keys.
- ``passwords``: where a password comes from (prompt, variable, file) and its rules.

This layer imports only ``enclave.errors`` and the standard library besides
cryptography; the node and the faces build on it.
"""
