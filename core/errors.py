"""One error family for every front end.

Each error carries a short ``title`` and a ``message`` in the admin's terms (what is wrong, what to do) and,
where it concerns one input, the ``field`` it belongs to. The TUI shows title and message next to the field,
the CLI prints them to stderr and exits 2, the HTTP shim maps them to a 4xx status.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base class: an error a user can act on."""

    title = "Something went wrong"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        prefix = f"{self.field}: " if self.field else ""
        return f"{prefix}{self.message}"


class InvalidInput(SwitchboardError):
    """A value given by the user is malformed or not allowed."""

    title = "Invalid input"
    http_status = 422


class NotFound(SwitchboardError):
    """The thing named does not exist (or is not visible to this tenant)."""

    title = "Not found"
    http_status = 404


class AlreadyExists(SwitchboardError):
    """A unique name (slug, username, ...) is taken."""

    title = "Already exists"
    http_status = 409


class StaleUpdate(SwitchboardError):
    """Somebody else saved a newer version in the meantime."""

    title = "Changed by someone else"
    http_status = 409


class AuthenticationFailed(SwitchboardError):
    """Wrong credentials; deliberately neutral about which part was wrong."""

    title = "Sign-in failed"
    http_status = 401


class PermissionDenied(SwitchboardError):
    """Signed in, but without the privilege needed."""

    title = "Not allowed"
    http_status = 403


class ConfigurationError(SwitchboardError):
    """The server's own settings are unusable."""

    title = "Configuration error"
    http_status = 500


class PhoneNumberError(InvalidInput):
    """A phone number could not be understood."""

    title = "Invalid phone number"


class TemplateError(InvalidInput):
    """A script template is malformed or unsafe; ``position`` points at the problem."""

    title = "Invalid script"

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        field: str | None = "url_template",
        problems: list[TemplateProblem] | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.position = position
        self.problems = problems or []


class TemplateProblem:
    """One problem found in a template: where, and what."""

    __slots__ = ("message", "position")

    def __init__(self, position: int, message: str) -> None:
        self.position = position
        self.message = message

    def __repr__(self) -> str:
        return f"TemplateProblem({self.position!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TemplateProblem) and (other.position, other.message) == (
            self.position,
            self.message,
        )

    __hash__ = None  # type: ignore[assignment]


class PresetError(SwitchboardError):
    """A preset file is malformed; the message names the file and the key."""

    title = "Invalid preset"


class ConnectorError(SwitchboardError):
    """Talking to the CRM failed; the message says so in admin terms."""

    title = "CRM connection failed"
    http_status = 502

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool = False, field: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.retryable = retryable
