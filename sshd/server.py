"""The per-connection gatekeeper: throttling, authentication against core, and shell-only sessions.

``Gatekeeper`` is asyncssh's ``SSHServer`` for one connection. It admits or refuses the connection by its
source address before any key exchange work, checks passwords (argon2, in a worker thread) and public keys
against the user's record, slows down and counts failures, and opens nothing but interactive shell sessions:
exec, subsystems (SFTP), SCP and every kind of forwarding are refused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import asyncssh

from core.errors import AuthenticationFailed
from core.services import signins, users
from sshd.session import AdminSession, SignedIn

if TYPE_CHECKING:
    from sshd.service import SshService

log = logging.getLogger(__name__)

_MAX_KEY_OFFERS = 20  # public keys a client may offer on one connection before it is closed


class ShellOnlyProcess(asyncssh.SSHServerProcess[str]):
    """A session channel that accepts a shell request only: exec and subsystem requests are refused."""

    def exec_requested(self, command: str) -> bool:
        """Refuse ``ssh host command`` (and SCP, which is an exec request)."""
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        """Refuse SFTP and any other subsystem."""
        return False


class Gatekeeper(asyncssh.SSHServer):
    """Admission, authentication and session creation for one connection."""

    def __init__(self, service: SshService) -> None:
        self._service = service
        self._conn: asyncssh.SSHServerConnection | None = None
        self.address = "unknown"
        self._pending = False  # admitted, not signed in yet: counted by the throttle
        self._password_failures = 0
        self._key_offers = 0
        self._rejected_keys: list[str] = []
        self._key_owners: dict[tuple[str, str], int | None] = {}
        self._accepted_key: SignedIn | None = None
        self._password_ok: SignedIn | None = None
        self.signed_in: SignedIn | None = None

    # --- connection ---------------------------------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Admit the connection, or close it at once with the reason when its address is throttled."""
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "unknown"
        refusal = self._service.throttle.admit(self.address)
        if refusal is not None:
            log.info("refused an SSH connection from %s: %s", self.address, refusal)
            self._service.note_throttled(self.address, refusal)
            asyncio.get_running_loop().call_soon(conn.disconnect, asyncssh.DISC_TOO_MANY_CONNECTIONS, refusal)
            return
        self._pending = True
        self._service.connection_opened(self, conn)
        self._service.audit(signins.CONNECT, address=self.address)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; record the keys that were offered in vain if nobody signed in."""
        if self._pending:
            self._pending = False
            self._service.throttle.release(self.address)
        if self.signed_in is None and self._rejected_keys:
            self._service.audit(
                signins.LOGIN_FAILED,
                address=self.address,
                username=self._username,
                details={"method": "publickey", "fingerprints": self._rejected_keys},
            )
        self._service.connection_closed(self)

    @property
    def _username(self) -> str:
        return str(self._conn.get_extra_info("username") or "") if self._conn else ""

    def close(self, reason: str) -> None:
        """Disconnect this connection, telling the client why."""
        if self._conn is not None:
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, reason)

    # --- authentication -----------------------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        """Every user must authenticate."""
        return True

    def password_auth_supported(self) -> bool:
        """Passwords (also through keyboard-interactive) are accepted."""
        return True

    def public_key_auth_supported(self) -> bool:
        """Public keys stored with the user are accepted."""
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        """Check the password in a worker thread; after a failure, wait before answering."""
        if self._service.throttle.blocked_for(self.address) > 0:
            await self._password_failed(username, counted=False)
            return False
        try:
            user_id = await self._service.call_db(
                lambda s: users.authenticate_password(session=s, username=username, password=password).id
            )
        except AuthenticationFailed:
            await self._password_failed(username)
            return False
        self._password_ok = SignedIn(int(user_id or 0), username, "password", None, self.address)
        return True

    async def _password_failed(self, username: str, *, counted: bool = True) -> None:
        self._password_failures += 1
        blocked = self._service.throttle.failed(self.address) if counted else True
        log.info("failed SSH password sign-in for %r from %s", username[:80], self.address)
        self._service.audit(
            signins.LOGIN_FAILED, address=self.address, username=username, details={"method": "password"}
        )
        await asyncio.sleep(self._service.config.failure_delay)
        if blocked or self._password_failures >= self._service.config.max_auth_failures:
            self.close("too many failed sign-ins")

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` is one of the user's stored keys (asyncssh then checks the signature)."""
        fingerprint = str(key.get_fingerprint("sha256"))
        line = key.export_public_key("openssh").decode("ascii", "replace")
        lookup = (username, fingerprint)
        if lookup not in self._key_owners:
            self._key_offers += 1
            if self._key_offers > _MAX_KEY_OFFERS or self._service.throttle.blocked_for(self.address) > 0:
                self.close("too many keys offered")
                return False
            owner = await self._service.call_db(
                lambda s: signins.find_key_owner(session=s, username=username, public_key=line)
            )
            self._key_owners[lookup] = owner.id if owner is not None else None
        user_id = self._key_owners[lookup]
        if user_id is None:
            if fingerprint not in self._rejected_keys:
                self._rejected_keys.append(fingerprint)
            return False
        self._accepted_key = SignedIn(user_id, username, "publickey", fingerprint, self.address)
        return True

    def auth_completed(self) -> None:
        """Signed in: stop counting the connection as pending and record the sign-in."""
        who = self._password_ok or self._accepted_key
        if who is None:  # cannot happen: asyncssh only completes after one of the two succeeded
            self.close("sign-in state lost")
            return
        self.signed_in = who
        if self._pending:
            self._pending = False
            self._service.throttle.release(self.address)
        log.info("%s signed in over SSH from %s (%s)", who.username, who.address, who.method)
        details: dict[str, Any] = {"method": who.method}
        if who.fingerprint:
            details["fingerprint"] = who.fingerprint
        self._service.audit(signins.LOGIN, address=who.address, username=who.username, details=details)
        if who.method == "publickey":
            user_id = who.user_id
            self._service.background_db(lambda s: signins.mark_signed_in(session=s, user_id=user_id))

    # --- channels -----------------------------------------------------------------------------------------

    def session_requested(self) -> ShellOnlyProcess | bool:
        """A session channel that runs the admin app (when a shell is requested)."""
        who = self.signed_in
        if who is None:
            return False
        service = self._service

        async def run(process: asyncssh.SSHServerProcess[str]) -> None:
            session = AdminSession(service, process, who)
            service.session_opened(session)
            try:
                await session.run()
            finally:
                service.session_closed(session)

        return ShellOnlyProcess(run, None, 0, False)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        """No TCP forwarding (``ssh -L``)."""
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        """No remote forwarding (``ssh -R``)."""
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        """No UNIX socket forwarding."""
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        """No remote UNIX socket forwarding."""
        return False
