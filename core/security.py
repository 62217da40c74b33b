"""Passwords (argon2id), API tokens, SSH public keys and the encryption of CRM secrets at rest."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa

from core.errors import ConfigurationError, InvalidInput

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

# A few of the most used passwords; a password that is one of these (ignoring case and trailing digits) is refused.
_COMMON = frozenset(
    [
        "password",
        "passw0rd",
        "welcome",
        "qwerty",
        "qwertyuiop",
        "asdfghjkl",
        "azerty",
        "letmein",
        "admin",
        "administrator",
        "iloveyou",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "sunshine",
        "princess",
        "starwars",
        "whatever",
        "trustno1",
        "changeme",
        "secret",
        "master",
        "abc123",
        "abcdef",
        "abcdefgh",
        "123456",
        "1234567890",
        "0987654321",
        "111111",
        "000000",
        "switchboard",
    ]
)
MIN_PASSWORD_LENGTH = 10


def check_password_strength(password: str, *, username: str = "") -> None:
    """Refuse empty and very weak passwords, saying what makes a good one."""
    advice = f"choose at least {MIN_PASSWORD_LENGTH} characters, e.g. a few unrelated words"
    if not password or not password.strip():
        raise InvalidInput(f"the password is empty; {advice}", field="password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is too short ({len(password)} characters); {advice}", field="password")
    core = password.lower().rstrip("0123456789!.")
    if core in _COMMON or password.lower() in _COMMON:
        raise InvalidInput(f"the password is one of the most common passwords; {advice}", field="password")
    if len(set(password)) < 5:
        raise InvalidInput(f"the password repeats too few different characters; {advice}", field="password")
    if username and username.split("@")[0].lower() in password.lower() and len(username) >= 3:
        raise InvalidInput(f"the password contains the user name; {advice}", field="password")


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; a missing hash still spends the time of a check (no timing oracle)."""
    if not password_hash:
        _burn(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _burn(password: str) -> None:
    """Spend the time of one verification, so an unknown user answers as slowly as a wrong password."""
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_dummy_hash(), password)


@cache
def _dummy_hash() -> str:
    """A hash of a random password, made on first use (hashing costs ~250 ms, too much for every import)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def generate_password() -> str:
    """A strong random password that is easy to type (about 120 bits)."""
    return "-".join(secrets.token_urlsafe(8).replace("_", "x").replace("-", "y") for _ in range(3))


# --- API tokens ---------------------------------------------------------------------------------------------

TOKEN_PREFIX = "sb_"  # noqa: S105 (a visible marker, not a secret)


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly made token: the full value (shown once), its visible prefix and its stored hash."""

    value: str
    prefix: str
    digest: str


def new_api_token() -> NewToken:
    """A random bearer token; only its SHA-256 is stored (it has 256 bits of entropy, so no slow hash is needed)."""
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(value=value, prefix=value[:10], digest=token_digest(value))


def token_digest(value: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def mask(secret: str | None, *, keep: int = 4) -> str:
    """A secret shown safely: its last few characters only, and nothing at all when it is short."""
    if not secret:
        return ""
    if len(secret) <= keep * 3:
        return "•" * 8
    return "•" * 8 + secret[-keep:]


# --- SSH public keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedSshKey:
    """An OpenSSH public key, canonical (``algorithm base64``), with its SHA256 fingerprint as ssh shows it."""

    algorithm: str
    public_key: str
    fingerprint: str
    comment: str


_SSH_ALGORITHMS = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


def parse_ssh_public_key(text: str) -> ParsedSshKey:
    """Parse one ``authorized_keys``-style line; refuse anything malformed, DSA, or RSA under 2048 bits."""
    line = text.strip()
    parts = line.split(None, 2)
    hint = "paste one line of your id_ed25519.pub (it starts with ssh-ed25519)"
    if len(parts) < 2 or parts[0] not in _SSH_ALGORITHMS:
        raise InvalidInput(f"this is not an OpenSSH public key; {hint}", field="ssh_key")
    algorithm, blob = parts[0], parts[1]
    try:
        key = serialization.load_ssh_public_key(f"{algorithm} {blob}".encode("ascii"))
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, UnicodeEncodeError, TypeError) as exc:
        raise InvalidInput(f"the key is damaged ({exc}); {hint}", field="ssh_key") from None
    if isinstance(key, dsa.DSAPublicKey):
        raise InvalidInput("DSA keys are no longer safe; use an ed25519 key", field="ssh_key")
    key_size = getattr(key, "key_size", 256)
    if algorithm == "ssh-rsa" and key_size < 2048:
        raise InvalidInput(f"this RSA key has only {key_size} bits; use ed25519 or RSA ≥ 2048", field="ssh_key")
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    comment = parts[2].strip() if len(parts) > 2 else ""
    return ParsedSshKey(algorithm, f"{algorithm} {blob}", f"SHA256:{digest}", comment[:200])


# --- secrets at rest ----------------------------------------------------------------------------------------


class SecretBox:
    """Encrypts an integration's secret settings (Fernet: AES-128-CBC + HMAC-SHA256) with the server's key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise ConfigurationError(
                "SWITCHBOARD_SECRET_KEY is not a valid key: it must be 32 url-safe base64-encoded bytes "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')",
                field="secret_key",
            ) from None

    def seal(self, values: dict[str, str]) -> str:
        """Encrypt a mapping of secret settings; an empty mapping is stored as an empty string."""
        if not values:
            return ""
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode("ascii")

    def open(self, token: str) -> dict[str, str]:
        """Decrypt what ``seal`` made."""
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise ConfigurationError(
                "the stored CRM secrets cannot be decrypted with this server's key: was "
                "SWITCHBOARD_SECRET_KEY or secret.key in the data directory changed?",
                field="secret_key",
            ) from None
        return {str(k): str(v) for k, v in data.items()}


def load_secret_key(data_dir: Path, configured: str | None) -> bytes:
    """The configured key, or the one kept in ``<data dir>/secret.key`` (created with mode 0600 when absent)."""
    if configured:
        return configured.encode("ascii", "replace")
    path = data_dir / "secret.key"
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())
