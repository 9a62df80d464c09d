"""The faces: what a person meets. Each uses only the Node API (``enclave.node``).

- ``cli``: the ``enclave`` command, its subcommands and seed flags, the offline actions.
- ``parsers``: what ``enclave`` accepts (the subcommand table, their parsers, the seed's flags).
- ``status``: bare ``enclave`` (status and next steps) and ``enclave settings``.
- ``repl`` and ``repl_commands``: the terminal chat (``listen``); ``jsonlines``: ``listen --json``.
- ``send``: ``enclave send PEER MESSAGE``, through the running node or its outbox.
- ``runner``: runs a node for a face (signals, the control socket, shutdown).
- ``web``: the local web page (``--web``) and its JSON and WebSocket API.

A face never imports the store, the protocol or ``_fast``, and never another face's
internals (tests/test_layers.py checks the imports).
"""
