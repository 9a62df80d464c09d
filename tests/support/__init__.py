"""What Enclave's tests share: nodes and peers to drive, inputs to feed, ways to wait.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so a test imports these as
``from support.nodes import start``. Each module here names its role in its header.
"""
