"""The operator CLI, end to end on both databases: output, --json, exit codes, and nothing lost on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.cli import main
from tests.factories import PASSWORD

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"


class Cli:
    """Runs ``switchboard`` in-process against the test database; returns (exit code, stdout, stderr)."""

    def __init__(
        self, url: str, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.base = ["--data-dir", str(data_dir), "--database-url", url]
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            import io

            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = 0
        try:
            main([*self.base, *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *args: str, stdin: str | None = None) -> object:
        code, out, err = self(*args, "--json", stdin=stdin)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(engine.url.render_as_string(hide_password=False), tmp_path / "data", capsys, monkeypatch)


def test_tenant_user_token_lifecycle(cli: Cli) -> None:
    assert (
        cli(
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme B.V.",
            "--country",
            "nl",
            "--timezone",
            "Europe/Amsterdam",
        )[0]
        == 0
    )
    assert cli.json("tenant", "list")[0]["country"] == "NL"

    code, out, err = cli(
        "user",
        "create",
        "alice@acme.nl",
        "--tenant",
        "acme",
        "--name",
        "Alice",
        "--admin",
        "--password-stdin",
        "--ssh-key",
        ED25519,
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    listed = cli.json("user", "list", "--tenant", "acme")
    assert listed[0]["username"] == "alice@acme.nl" and listed[0]["is_admin"] is True
    assert "password_hash" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    assert listed[0]["ssh_keys"][0]["fingerprint"].startswith("SHA256:")

    created = cli.json("token", "create", "--tenant", "acme", "--name", "PBX")
    token = created["token"]
    assert token.startswith(created["prefix"])
    code, out, _ = cli("token", "list", "--tenant", "acme", "--json")
    assert token not in out and json.loads(out)[0]["prefix"] == created["prefix"]
    assert cli("token", "revoke", "--tenant", "acme", created["prefix"])[0] == 0
    assert cli.json("token", "list", "--tenant", "acme")[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["tenant", "create", "acme", "--name", "A", "--country", "XX"], None, "country"),
        (
            ["tenant", "create", "acme", "--name", "A", "--country", "NL", "--timezone", "Nowhere/City"],
            None,
            "timezone",
        ),
        (
            ["user", "create", "bob", "--tenant", "nosuch", "--name", "Bob", "--password-stdin"],
            PASSWORD,
            "tenant",
        ),
        (
            ["user", "create", "bob", "--tenant", "base", "--name", "Bob", "--password-stdin"],
            "\n",
            "password",
        ),
        (
            ["user", "create", "bob", "--tenant", "base", "--name", "Bob", "--password-stdin"],
            "12345\n",
            "password",
        ),
        (
            [
                "user",
                "create",
                "bob",
                "--tenant",
                "base",
                "--name",
                "Bob",
                "--password-stdin",
                "--ssh-key",
                "ssh-rsa garbage",
            ],
            PASSWORD,
            "ssh_key",
        ),
        (["user", "create", "bob", "--tenant", "base", "--name", "Bob", "--no-password"], None, "ssh_key"),
        (["user", "set-password", "nobody", "--password-stdin"], PASSWORD, "username"),
        (["integration", "show", "42"], None, "integration"),
        (["integration", "delete", "42", "--yes"], None, "integration"),
        (["token", "revoke", "--tenant", "base", "sb_nothing"], None, "token"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    cli: Cli, args: list[str], stdin: str | None, expected: str
) -> None:
    cli("tenant", "create", "base", "--name", "Base", "--country", "DE")
    before = (
        cli.json("tenant", "list"),
        cli.json("user", "list", "--tenant", "base"),
        cli.json("token", "list", "--tenant", "base"),
    )
    code, out, err = cli(*args, stdin=stdin)
    assert code == 2
    assert err.startswith("error: ") and f"{expected}: " in err
    assert "Traceback" not in err and out == ""
    after = (
        cli.json("tenant", "list"),
        cli.json("user", "list", "--tenant", "base"),
        cli.json("token", "list", "--tenant", "base"),
    )
    assert after == before


def test_duplicate_slug_and_username(cli: Cli) -> None:
    cli("tenant", "create", "acme", "--name", "Acme", "--country", "NL")
    code, _, err = cli("tenant", "create", "acme", "--name", "Other", "--country", "BE")
    assert code == 2 and "exists already" in err
    cli("user", "create", "eve", "--tenant", "acme", "--name", "Eve", "--password-stdin", stdin=PASSWORD)
    cli("tenant", "create", "other", "--name", "Other", "--country", "BE")
    code, _, err = cli(
        "user", "create", "eve", "--tenant", "other", "--name", "Eve2", "--password-stdin", stdin=PASSWORD
    )
    assert code == 2 and "taken" in err


def test_integration_commands(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    from sqlmodel import Session

    from core.runtime import open_runtime
    from core.settings import Settings
    from tests.factories import make_integration

    cli("tenant", "create", "acme", "--name", "Acme", "--country", "NL")
    runtime = open_runtime(Settings(data_dir=tmp_path / "data", database_url=cli.base[3]))
    with Session(engine) as session:
        from core.services.tenants import get_tenant

        integ = make_integration(
            session,
            get_tenant(session=session, slug="acme"),
            runtime.box,
            name="HubSpot",
            secrets={"access_token": "pat-na1-DO-NOT-PRINT-ME"},
        )
        session.commit()
        ident = str(integ.id)
    runtime.close()

    listed = cli.json("integration", "list", "--tenant", "acme")
    assert listed[0]["name"] == "HubSpot" and listed[0]["enabled"] is True
    for args in (["integration", "show", ident], ["integration", "list", "--tenant", "acme"]):
        for extra in ([], ["--json"]):
            code, out, err = cli(*args, *extra)
            assert code == 0 and "DO-NOT-PRINT-ME" not in out + err and "secrets" not in out

    assert cli("integration", "disable", ident)[0] == 0
    assert cli.json("integration", "show", ident)["enabled"] is False
    assert cli("integration", "enable", ident, "--tenant", "acme")[0] == 0
    code, _, err = cli("integration", "disable", ident, "--tenant", "nosuch")
    assert code == 2 and "tenant" in err

    code, _, err = cli("integration", "delete", ident, stdin="n\n")
    assert code == 1 and "nothing was changed" in err
    assert len(cli.json("integration", "list", "--tenant", "acme")) == 1
    assert cli("integration", "delete", ident, "--yes")[0] == 0
    assert cli.json("integration", "list", "--tenant", "acme") == []


def test_demo_seed_is_idempotent(cli: Cli) -> None:
    code, out, _ = cli("demo")
    assert code == 0 and "created admin admin@demo with password: " in out
    code, out, _ = cli("demo")
    assert code == 0 and "exists already" in out and "password:" not in out
    users = cli.json("user", "list", "--tenant", "demo")
    assert [u["username"] for u in users] == ["admin@demo"] and users[0]["is_admin"]


def test_bad_database_url_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--data-dir", str(tmp_path), "--database-url", "mysql://x", "tenant", "list"])
    assert info.value.code == 2
    assert "database_url" in capsys.readouterr().err
