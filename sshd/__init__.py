"""The SSH server: admins sign in over SSH and get the admin app, one process per session on a real PTY.

- ``service``: ``create_service(runtime, options)`` for ``switchboard serve`` (``start``/``stop``/``describe``).
- ``server``: the per-connection gatekeeper (throttle, password and key sign-in against core, shell only).
- ``session``: one session: checks, the handover of the identity to a child, the relay, idle timeout.
- ``children`` and ``forkserver``: PTY children, started from a fork server and kept warm in a pool.
- ``limits``, ``hostkey``, ``config``: the throttle and session caps, the host key, the settings.

Importing this package is cheap; only ``service`` and what it uses import asyncssh.
"""
