"""switchboard's headless core: storage, use-cases, numbers, templates, sync and the HTTP shim.

Nothing in here imports textual, asyncssh, ``tui`` or ``sshd`` (checked by import-linter and a test).
"""

__version__ = "0.1.0"
