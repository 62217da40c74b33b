"""The admin app: a Textual terminal UI over core's use-case functions.

``tui.app.make_app`` builds it (for the ``switchboard tui`` command, for the SSH server's child processes and
for the tests). Importing this package is cheap: the CLI loads ``tui.cli`` on every ``switchboard`` call, so
nothing here imports Textual until the app is actually started.
"""
