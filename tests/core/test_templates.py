"""Script templates: parsing, validation for the editor, and safe rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import TemplateError, TemplateProblem
from core.templates import (
    _LONE_PERCENT,
    _SAFE_CHARACTERS,
    _URL_SAFE,
    ALLOWED_SCHEMES,
    CALL_PROPERTIES,
    STANDARD_FIELDS,
    Placeholder,
    _as_url,
    _Context,
    _encode,
    find_problems,
    parse,
    placeholders_used,
    render,
    sample_call,
    validate,
)

MANUAL_MAILTO = (
    "mailto://?Subject=Callback%20request&Body=Dear%20colleague%2C%0A%0APlease%20call%20to%3A%0A%0A"
    "Name%3A%20%24%28DisplayName%29%0AAccount%20number%3A%20%24%28Identifier%29%0A"
    "Phone%3A%20%23%28Callernumber%29%0ADirect%20CRM%20link%20%24%28PopUpUri%29%0A%0A"
    "Kind%20regards%2C%0A%0AName%20of%20sender%0A%0A"
)
CRM_FIELDS = ("AccountNumber", "Email", "Account_Id", "Tenant")
CALL = {
    "Caller name": "Anna de Vries",
    "Caller number": "0201234567",
    "Device name": "Sales desk",
    "Device number": "201",
    "Ddi name": "Sales",
    "Ddi number": "0207654321",
    "Start time": "2024-05-14T09:30:00+02:00",
}
RECORD = {
    "DisplayName": "Jansen BV",
    "Identifier": "4711",
    "PopUpUri": "https://crm.example.com/contact/4711",
}


def only_placeholder(template: str) -> Placeholder:
    """The single placeholder in ``template``."""
    (placeholder,) = placeholders_used(template)
    return placeholder


# --- names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "kind", "name"),
    [
        ("https://x/?q=#(Caller number)", "call", "Caller number"),
        ("https://x/?q=#(Callernumber)", "call", "Caller number"),
        ("https://x/?q=#(CALLER NUMBER)", "call", "Caller number"),
        ("https://x/?q=#( caller  Number )", "call", "Caller number"),
        ("https://x/?q=#(ddiname)", "call", "Ddi name"),
        ("https://x/?q=#(StartTime)", "call", "Start time"),
        ("https://x/?q=$(DisplayName)", "field", "DisplayName"),
        ("https://x/?q=$(displayname)", "field", "DisplayName"),
        ("https://x/?q=$(Display Name)", "field", "DisplayName"),
        ("https://x/?q=$(POPUPURI)", "field", "PopUpUri"),
        ("https://x/?q=$(AccountNumber)", "field", "AccountNumber"),
        ("https://x/?q=$(Account.Name)", "field", "Account.Name"),
    ],
)
def test_names_are_canonical_whatever_the_case_and_spacing(template: str, kind: str, name: str) -> None:
    placeholder = only_placeholder(template)
    assert (placeholder.kind, placeholder.name) == (kind, name)


@pytest.mark.parametrize(
    ("written", "record_key"),
    [
        ("$(AccountNumber)", "AccountNumber"),
        ("$(accountnumber)", "AccountNumber"),
        ("$(Account Number)", "AccountNumber"),
        ("$(AccountNumber)", "accountnumber"),
        ("$(AccountNumber)", "ACCOUNT NUMBER"),
    ],
)
def test_record_fields_are_looked_up_case_and_space_insensitively(written: str, record_key: str) -> None:
    assert render(f"https://x/?a={written}", call={}, record={record_key: "42"}) == "https://x/?a=42"


def test_call_keys_are_looked_up_case_and_space_insensitively() -> None:
    assert render("tel:#(Caller number)", call={"callerNumber": "0201234567"}) == "tel:0201234567"


def test_field_names_are_known_case_insensitively_when_validating() -> None:
    assert find_problems("https://x/?a=$(accountnumber)&b=$(EMAIL)", record_fields=CRM_FIELDS) == []


# --- percent-encoded placeholders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "kind", "name"),
    [
        ("https://x/?q=%23%28Caller%20number%29", "call", "Caller number"),
        ("https://x/?q=%23%28Callernumber%29", "call", "Caller number"),
        ("https://x/?q=%24%28DisplayName%29", "field", "DisplayName"),
        ("https://x/?q=$%28DisplayName%29", "field", "DisplayName"),
        ("https://x/?q=%24(DisplayName)", "field", "DisplayName"),
        ("https://x/?q=$(DisplayName%29", "field", "DisplayName"),
        ("https://x/?q=#(Caller%20number)", "call", "Caller number"),
        ("https://x/?q=$(Account%5fId)", "field", "Account_Id"),
        ("https://x/?q=$(Account%5FId)", "field", "Account_Id"),
        ("https://x/?q=$(Account%2dId)", "field", "Account-Id"),
    ],
)
def test_encoded_placeholders_are_recognised(template: str, kind: str, name: str) -> None:
    placeholder = only_placeholder(template)
    assert (placeholder.kind, placeholder.name, placeholder.encoded) == (kind, name, True)
    assert (placeholder.start, placeholder.end) == (13, len(template))


def test_plain_placeholder_is_not_marked_encoded() -> None:
    assert only_placeholder("https://x/?q=$(DisplayName)").encoded is False


def test_encoded_placeholder_renders_its_value() -> None:
    template = "https://x/?q=%24%28displayname%29&n=%23%28Caller%20number%29"
    assert render(template, call=CALL, record=RECORD) == "https://x/?q=Jansen%20BV&n=0201234567"


def test_encoded_brackets_alone_are_not_placeholders() -> None:
    assert placeholders_used("mailto:?Body=Call%20%28urgent%29") == []


# --- the manual's mailto example ----------------------------------------------------------------------


def test_manual_mailto_example_is_valid() -> None:
    assert find_problems(MANUAL_MAILTO, record_fields=CRM_FIELDS) == []
    assert [p.name for p in placeholders_used(MANUAL_MAILTO)] == [
        "DisplayName",
        "Identifier",
        "Caller number",
        "PopUpUri",
    ]


def test_manual_mailto_example_renders_values_that_cannot_break_the_mail() -> None:
    record = {
        "DisplayName": "Müller & Söhne\nGmbH",
        "Identifier": "A-1&Subject=Hacked#x",
        "PopUpUri": "https://crm.example.com/contact/4711?tab=notes&x=1",
    }
    url = render(MANUAL_MAILTO, call=CALL, record=record)
    assert url is not None
    assert url.startswith("mailto://?Subject=Callback%20request&Body=")
    assert "Name%3A%20M%C3%BCller%20%26%20S%C3%B6hne%0AGmbH%0A" in url
    assert "A-1%26Subject%3DHacked%23x" in url
    headers = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert [key for key, _ in headers] == ["Subject", "Body"]
    assert urlsplit(url).fragment == ""
    body = dict(headers)["Body"]
    assert "Name: Müller & Söhne\nGmbH\n" in body
    assert "Account number: A-1&Subject=Hacked#x\n" in body
    assert "Phone: 0201234567\n" in body
    assert "Direct CRM link https://crm.example.com/contact/4711?tab=notes&x=1\n" in body


# --- encoding where the value lands -------------------------------------------------------------------

ENCODINGS = [
    ("a/b", "a%2Fb"),
    ("a b", "a%20b"),
    ("x&y=z", "x%26y%3Dz"),
    ("#top", "%23top"),
    ("?q", "%3Fq"),
    ("1+1", "1%2B1"),
    ("100%", "100%25"),
    ("%41", "%2541"),
    ("\"quoted\" 'single'", "%22quoted%22%20%27single%27"),
    ("line\nbreak\r\n", "line%0Abreak%0D%0A"),
    ("Müller", "M%C3%BCller"),
    ("José Øster", "Jos%C3%A9%20%C3%98ster"),
    ("a;b,c:d@e", "a%3Bb%2Cc%3Ad%40e"),
    ("plain-value_1.2~3", "plain-value_1.2~3"),
]


@pytest.mark.parametrize(("value", "encoded"), ENCODINGS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("https://crm.example.com/contact/$(Identifier)/edit", "https://crm.example.com/contact/{}/edit"),
        ("https://crm.example.com/contact/$(Identifier)", "https://crm.example.com/contact/{}"),
        ("https://crm.example.com/search?q=$(Identifier)&x=1", "https://crm.example.com/search?q={}&x=1"),
        ("https://crm.example.com/app#/contact/$(Identifier)", "https://crm.example.com/app#/contact/{}"),
        ("mailto:?subject=Call&body=$(Identifier)", "mailto:?subject=Call&body={}"),
    ],
    ids=["path-segment", "last-path-segment", "query", "fragment", "mailto-body"],
)
def test_values_are_percent_encoded_where_they_land(template: str, expected: str, value: str, encoded: str) -> None:
    assert render(template, call={}, record={"Identifier": value}) == expected.format(encoded)


def test_value_cannot_change_the_structure_of_an_https_link() -> None:
    template = "https://crm.example.com/contact/$(Identifier)/view?id=$(Identifier)&n=1#$(Identifier)"
    value = "../a/b?c=d&e=f#g h"
    url = render(template, call={}, record={"Identifier": value})
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "crm.example.com")
    assert [unquote(segment) for segment in parts.path.split("/")] == ["", "contact", value, "view"]
    assert parse_qsl(parts.query) == [("id", value), ("n", "1")]
    assert unquote(parts.fragment) == value


@pytest.mark.parametrize("value", [".", ".."])
def test_value_that_would_be_a_dot_path_segment_is_refused(value: str) -> None:
    assert render("https://crm.example.com/a/$(Identifier)/b", call={}, record={"Identifier": value}) is None


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("https://crm.example.com/a/$(Identifier)/b", "...", "https://crm.example.com/a/.../b"),
        ("https://crm.example.com/a/x$(Identifier)/b", "..", "https://crm.example.com/a/x../b"),
        ("https://crm.example.com/a?q=$(Identifier)", "..", "https://crm.example.com/a?q=.."),
        ("https://crm.example.com/a/$(Identifier)/b", "%2e%2E", "https://crm.example.com/a/%252e%252E/b"),
    ],
)
def test_dots_that_do_not_make_a_dot_segment_are_kept(template: str, value: str, expected: str) -> None:
    assert render(template, call={}, record={"Identifier": value}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme", "https://acme.crm.example.com/x"),
        ("eu-1.acme", "https://eu-1.acme.crm.example.com/x"),
        ("evil.com/", None),
        ("evil.com#", None),
        ("evil.com?", None),
        ("user@evil.com", None),
        ("a b", None),
    ],
)
def test_value_in_a_host_name_must_look_like_a_host_name(value: str, expected: str | None) -> None:
    assert render("https://$(Tenant).crm.example.com/x", call={}, record={"Tenant": value}) == expected


# --- a placeholder that is the URL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("$(PopUpUri)", "https://crm.example.com/c/1", "https://crm.example.com/c/1"),
        ("$(PopUpUri)", "http://crm.example.com/c/1?a=1&b=2#x", "http://crm.example.com/c/1?a=1&b=2#x"),
        ("$(PopUpUri)", "HTTPS://crm.example.com/c/1", "HTTPS://crm.example.com/c/1"),
        ("  $(PopUpUri)", " https://crm.example.com/c/1\n", "https://crm.example.com/c/1"),
        ("%24%28PopUpUri%29", "https://crm.example.com/c/1", "https://crm.example.com/c/1"),
        ("$(PopUpUri)?tab=notes", "https://crm.example.com/c/1", "https://crm.example.com/c/1?tab=notes"),
        ("$(PopUpUri)?tab=notes", "https://crm.example.com/c?id=1", "https://crm.example.com/c?id=1&tab=notes"),
        ("$(PopUpUri)/notes", "https://crm.example.com/c/1", "https://crm.example.com/c/1/notes"),
        ("$(PopUpUri)", 'https://crm.example.com/a b"<>', "https://crm.example.com/a%20b%22%3C%3E"),
        ("$(PopUpUri)", "https://crm.example.com/ü?q=%zz", "https://crm.example.com/%C3%BC?q=%25zz"),
    ],
)
def test_leading_placeholder_is_inserted_as_a_url(template: str, value: str, expected: str) -> None:
    assert render(template, call={}, record={"PopUpUri": value}) == expected


def test_values_after_a_leading_url_are_encoded() -> None:
    url = render("$(PopUpUri)?name=$(DisplayName)", call={}, record={**RECORD, "DisplayName": "A&B=C"})
    assert url == "https://crm.example.com/contact/4711?name=A%26B%3DC"


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "mailto:someone@example.com",
        "crm.example.com/c/1",
        "/c/1",
        "//evil.example.com/",
        "https:evil.example.com",
        "https:///evil",
        "https:\\\\evil.example.com",
        "",
    ],
)
def test_leading_placeholder_that_is_not_an_http_url_is_refused(value: str) -> None:
    assert render("$(PopUpUri)", call={}, record={"PopUpUri": value}) is None
    assert render("$(PopUpUri)?tab=notes", call={}, record={"PopUpUri": value}) is None


def test_leading_placeholder_without_a_value_is_refused() -> None:
    assert render("$(PopUpUri)", call={}, record=None) is None


def test_leading_call_property_is_refused() -> None:
    assert render("#(Caller number)", call=CALL) is None
    (problem,) = find_problems("#(Caller number)", record_fields=())
    assert problem.position == 0
    assert "cannot start the script" in problem.message


# --- schemes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "https://crm.example.com/c/$(Identifier)",
        "http://crm.example.com/c/$(Identifier)",
        "HTTPS://crm.example.com/c/$(Identifier)",
        "mailto:support@example.com?subject=$(DisplayName)",
        "mailto://?Subject=Call%20$(DisplayName)",
        "tel:#(Caller number)",
        "callto:#(Caller number)",
        "callto://#(Caller number)",
        "sip:#(Caller number)@pbx.example.com",
        "sips:#(Caller number)@pbx.example.com",
        "https://www.google.nl?q=#(Caller number)",
    ],
)
def test_allowed_schemes_validate_and_render(template: str) -> None:
    validate(template, record_fields=CRM_FIELDS)
    url = render(template, call=CALL, record=RECORD)
    assert url is not None
    assert url.split(":", 1)[0].lower() in ALLOWED_SCHEMES


@pytest.mark.parametrize(
    ("template", "position", "scheme"),
    [
        ("javascript:alert(1)", 0, "javascript"),
        ("javascript:alert('$(DisplayName)')", 0, "javascript"),
        ("  javascript:alert(1)", 2, "javascript"),
        (" JaVaScRiPt:alert(1)", 1, "javascript"),
        ("java\tscript:alert(1)", 0, "javascript"),
        ("\x01\njava\nscript:alert(1)", 2, "javascript"),
        ("data:text/html;base64,PHNjcmlwdD4=", 0, "data"),
        ("file:///etc/passwd", 0, "file"),
        ("vbscript:msgbox(1)", 0, "vbscript"),
        ("ftp://files.example.com/$(Identifier)", 0, "ftp"),
        ("intent://scan/#Intent;scheme=x;end", 0, "intent"),
    ],
)
def test_refused_schemes_are_reported_with_position_and_never_rendered(
    template: str, position: int, scheme: str
) -> None:
    problems = find_problems(template, record_fields=CRM_FIELDS)
    assert [p.position for p in problems] == [position]
    assert problems[0].message == (
        f"Scheme {scheme}: at position {position} is not allowed. "
        "Allowed: callto:, http:, https:, mailto:, sip:, sips:, tel:."
    )
    assert render(template, call=CALL, record=RECORD) is None


@pytest.mark.parametrize(
    ("template", "position"),
    [
        ("crm.example.com/contact/$(Identifier)", 0),
        ("/contact/$(Identifier)", 0),
        ("  ?q=$(Identifier)", 2),
        ("my link: https://x", 0),
    ],
)
def test_missing_scheme_is_reported_and_not_rendered(template: str, position: int) -> None:
    problems = find_problems(template, record_fields=CRM_FIELDS)
    assert [p.position for p in problems] == [position]
    assert problems[0].message.startswith(f"No scheme at position {position}")
    assert render(template, call=CALL, record=RECORD) is None


def test_placeholder_inside_the_scheme_is_reported_and_checked_at_render() -> None:
    template = "java$(Identifier)script:alert(1)"
    problems = find_problems(template, record_fields=CRM_FIELDS)
    assert [p.position for p in problems] == [4]
    assert "inside the scheme" in problems[0].message
    assert render(template, call={}, record={"Identifier": ""}) is None
    assert render(template, call={}, record={"Identifier": ":"}) is None


# --- tel:, sip:, mailto: addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("tel:#(Caller number)", {"Caller number": "0201234567"}, "tel:0201234567"),
        ("tel:#(Caller number)", {"Caller number": "+31 20 123 4567"}, "tel:+31%2020%20123%204567"),
        ("tel:#(Caller number)", {"Caller number": "020;ext=1?x#y"}, "tel:020%3Bext%3D1%3Fx%23y"),
        ("tel:#(Caller number)", {"Caller number": "a@b"}, "tel:a%40b"),
        ("callto://#(Caller number)", {"Caller number": "+3120"}, "callto://+3120"),
        ("sip:#(Caller number)@pbx.example.com", {"Caller number": "+3120"}, "sip:+3120@pbx.example.com"),
        (
            "sip:#(Caller number)@pbx.example.com",
            {"Caller number": "evil@attacker.example"},
            "sip:evil%40attacker.example@pbx.example.com",
        ),
        (
            "sips:#(Caller number)@pbx.example.com;transport=tls",
            {"Caller number": "1;transport=udp"},
            "sips:1%3Btransport%3Dudp@pbx.example.com;transport=tls",
        ),
        ("sip:#(Caller name)", {"Caller name": "alice@pbx.example.com"}, "sip:alice@pbx.example.com"),
        ("tel:#(Caller number)", {}, "tel:"),
    ],
)
def test_dial_links(template: str, values: dict[str, str], expected: str) -> None:
    assert render(template, call=values) == expected


@pytest.mark.parametrize(
    ("template", "email", "expected"),
    [
        ("mailto:$(Email)", "a.b+crm@example.com", "mailto:a.b+crm@example.com"),
        ("mailto:$(Email)?subject=Hi", "x@example.com?cc=evil@example.com", None),
        ("mailto:$(Email)@example.com", "john@evil.example", "mailto:john%40evil.example@example.com"),
        ("mailto:$(Email)", "a@example.com, b@example.com", "mailto:a@example.com%2C%20b@example.com"),
    ],
)
def test_mail_addresses(template: str, email: str, expected: str | None) -> None:
    url = render(template, call={}, record={"Email": email})
    if expected is None:
        assert url is not None
        assert parse_qsl(urlsplit(url).query) == [("subject", "Hi")]
    else:
        assert url == expected


# --- validation for the editor ------------------------------------------------------------------------


def test_unknown_field_names_the_available_fields() -> None:
    problems = find_problems("https://crm.example.com/?q=$(Foo)", record_fields=CRM_FIELDS)
    assert problems == [
        TemplateProblem(
            27,
            "Unknown field $(Foo) at position 27. "
            "Available: DisplayName, Identifier, PopUpUri, AccountNumber, Email, Account_Id, Tenant.",
        )
    ]


def test_unknown_call_property_names_the_call_properties() -> None:
    (problem,) = find_problems("https://x/?q=#(Caller email)", record_fields=())
    assert problem.position == 13
    assert problem.message == (
        "Unknown call property #(Caller email) at position 13. Available: Caller name, Caller number, "
        "Device name, Device number, Ddi name, Ddi number, Start time."
    )


@pytest.mark.parametrize(
    ("template", "hint"),
    [
        ("https://x/?q=$(Caller number)", "write it as #(Caller number)"),
        ("https://x/?q=#(DisplayName)", "write it as $(DisplayName)"),
        ("https://x/?q=#(email)", "write it as $(Email)"),
    ],
)
def test_wrong_sigil_gets_a_hint(template: str, hint: str) -> None:
    (problem,) = find_problems(template, record_fields=CRM_FIELDS)
    assert problem.position == 13
    assert hint in problem.message


def test_unknown_encoded_placeholder_is_reported_decoded() -> None:
    (problem,) = find_problems("mailto:?body=%24%28No%20Such%29", record_fields=())
    assert problem.position == 13
    assert problem.message.startswith("Unknown field $(No Such) at position 13.")


@pytest.mark.parametrize(
    ("template", "position", "text"),
    [
        ("https://x/?q=#(Caller number", 13, "#(Caller number"),
        ("https://x/?q=#(Caller number&b=1", 13, "#(Caller number"),
        ("https://x/?q=$(DisplayName/x", 13, "$(DisplayName"),
        ("https://x/?q=%23%28Caller%20number", 13, "%23%28Caller%20number"),
        ("https://x/?q=$(Display$(Identifier)", 13, "$(Display"),
    ],
)
def test_unbalanced_brackets_are_reported_with_position(template: str, position: int, text: str) -> None:
    problems = [p for p in find_problems(template, record_fields=CRM_FIELDS) if "closing" in p.message]
    assert [p.position for p in problems] == [position]
    assert problems[0].message.startswith(f"Placeholder {text} at position {position} has no closing ')'.")
    assert "Available: " in problems[0].message
    assert parse(template)[1][0].position == position


@pytest.mark.parametrize(
    ("template", "position"),
    [
        ("https://x/?q=#()", 13),
        ("https://x/?q=$( )", 13),
        ("https://x/?q=%24%28%29", 13),
        ("https://x/?q=$(%20)", 13),
    ],
)
def test_empty_names_are_reported_with_position(template: str, position: int) -> None:
    problems = find_problems(template, record_fields=CRM_FIELDS)
    assert [p.position for p in problems] == [position]
    assert "has no name" in problems[0].message
    assert "Available: " in problems[0].message
    assert placeholders_used(template) == []


def test_all_problems_are_reported_in_order() -> None:
    template = "javascript:x?a=$(Foo)&b=#(Caller number&c=#()&d=#(Bar)&e=$(DisplayName)"
    problems = find_problems(template, record_fields=CRM_FIELDS)
    assert [p.position for p in problems] == [0, 15, 24, 42, 48]
    assert [p.message.split(" at position")[0] for p in problems] == [
        "Scheme javascript:",
        "Unknown field $(Foo)",
        "Placeholder #(Caller number",
        "Placeholder #()",
        "Unknown call property #(Bar)",
    ]


def test_empty_template_is_a_problem() -> None:
    assert [p.position for p in find_problems("", record_fields=())] == [0]
    assert [p.position for p in find_problems("  \n", record_fields=())] == [0]
    assert render("", call=CALL) is None


def test_validate_raises_the_first_problem_and_carries_all() -> None:
    template = "https://x/?a=$(Foo)&b=#(Bar)"
    with pytest.raises(TemplateError) as caught:
        validate(template, record_fields=CRM_FIELDS)
    error = caught.value
    assert error.position == 13
    assert error.message.startswith("Unknown field $(Foo) at position 13.")
    assert error.field == "url_template"
    assert error.problems == find_problems(template, record_fields=CRM_FIELDS)
    assert len(error.problems) == 2


def test_validate_accepts_a_good_script() -> None:
    validate("https://crm.example.com/contact/$(Identifier)?from=#(Caller number)", record_fields=())
    validate("$(PopUpUri)?tab=notes", record_fields=())


def test_parse_returns_tokens_and_syntax_problems_only() -> None:
    tokens, problems = parse("https://x/$(Foo)?q=#(Caller number)&r=#(")
    assert tokens == [
        "https://x/",
        Placeholder("field", "Foo", 10, 16, encoded=False),
        "?q=",
        Placeholder("call", "Caller number", 19, 35, encoded=False),
        "&r=#(",
    ]
    assert [p.position for p in problems] == [38]


def test_parse_results_can_be_changed_without_touching_the_cache() -> None:
    tokens, problems = parse("https://x/$(Identifier)")
    tokens.clear()
    problems.append(TemplateProblem(0, "x"))
    assert parse("https://x/$(Identifier)") == (["https://x/", Placeholder("field", "Identifier", 10, 23, False)], [])


def test_placeholder_token_is_the_canonical_spelling() -> None:
    assert only_placeholder("tel:%23%28callernumber%29").token == "#(Caller number)"


# --- values at call time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("https://x/c/$(Identifier)?n=#(Caller name)&t=#(Start time)", "https://x/c/?n=&t="),
        ("https://x/?a=$(NotInRecord)", "https://x/?a="),
        ("https://x/?a=#(Unknown thing)", "https://x/?a="),
        ("mailto:?body=Name%3A%20%24%28DisplayName%29", "mailto:?body=Name%3A%20"),
    ],
)
def test_missing_values_render_empty(template: str, expected: str) -> None:
    assert render(template, call={}) == expected
    assert render(template, call={}, record={}) == expected


@pytest.mark.parametrize(("value", "expected"), [(None, ""), (4711, "4711"), (True, "True")])
def test_values_that_are_not_text_do_not_break_rendering(value: object, expected: str) -> None:
    """CRM JSON can carry numbers, booleans and nulls although the type says str."""
    record: dict[str, Any] = {"Identifier": value}
    assert render("https://x/$(Identifier)", call={}, record=record) == f"https://x/{expected}"


def test_sample_call_has_every_call_property() -> None:
    call = sample_call()
    assert tuple(call) == CALL_PROPERTIES
    assert all(call.values())
    call["Caller name"] = "changed"
    assert sample_call()["Caller name"] != "changed"
    url = render("https://x/?n=#(Caller number)&t=#(Start time)", call=sample_call())
    assert url == "https://x/?n=0201234567&t=2024-05-14T09%3A30%3A00%2B02%3A00"


def test_standard_fields_are_always_available() -> None:
    template = "https://x/?" + "&".join(f"{name}=$({name})" for name in STANDARD_FIELDS)
    assert find_problems(template, record_fields=()) == []


# --- properties ---------------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
FIXED = (
    "https://crm.example.com/contacts/$(Identifier)/view"
    "?name=$(DisplayName)&from=#(Caller number)&at=#(Start time)#note-$(Identifier)"
)


def as_sent(value: str) -> str:
    """What a value reads as after encoding (lone surrogates cannot be encoded and become '?')."""
    return value.encode("utf-8", "replace").decode("utf-8")


@given(identifier=ANY_TEXT, name=ANY_TEXT, number=ANY_TEXT, start=ANY_TEXT)
def test_values_never_change_the_structure_of_a_link(identifier: str, name: str, number: str, start: str) -> None:
    record = {"Identifier": identifier, "DisplayName": name}
    url = render(FIXED, call={"Caller number": number, "Start time": start}, record=record)
    if url is None:
        assert identifier in (".", "..")
        return
    assert url.isascii()
    assert not any(c.isspace() for c in url)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "crm.example.com")
    segments = parts.path.split("/")
    assert len(segments) == 4
    assert unquote(segments[2], errors="replace") == as_sent(identifier)
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert [key for key, _ in query] == ["name", "from", "at"]
    assert [value for _, value in query] == [as_sent(name), as_sent(number), as_sent(start)]
    assert unquote(parts.fragment) == "note-" + as_sent(identifier)


@given(value=ANY_TEXT)
def test_a_leading_url_value_is_http_or_refused(value: str) -> None:
    url = render("$(PopUpUri)?tab=notes", call={}, record={"PopUpUri": value})
    assert url is None or urlsplit(url).scheme.lower() in ("http", "https")
    if url is not None:
        assert not any(c.isspace() or ord(c) < 0x20 for c in url)


TEMPLATE_PIECES = st.sampled_from(
    [
        "#",
        "$",
        "(",
        ")",
        "%",
        "%23",
        "%24",
        "%28",
        "%29",
        "%2",
        "%e2%82",
        "Caller number",
        "DisplayName",
        "PopUpUri",
        "https:",
        "//",
        "/",
        "?",
        "&",
        "=",
        ":",
        "@",
        ";",
        "mailto:",
        "tel:",
        "javascript:",
        " ",
        "\t",
        "\n",
        ".",
        "..",
        "x",
        "ü",
    ]
)
TEMPLATES = st.one_of(ANY_TEXT, st.lists(TEMPLATE_PIECES, max_size=25).map("".join))


@given(template=TEMPLATES, value=ANY_TEXT, fields=st.lists(ANY_TEXT, max_size=3))
def test_any_template_is_checked_and_rendered_without_raising(template: str, value: str, fields: list[str]) -> None:
    problems = find_problems(template, record_fields=fields)
    assert all(0 <= p.position <= len(template) for p in problems)
    parse(template)
    record = {"DisplayName": value, "PopUpUri": value, **{name: value for name in fields}}
    call = dict.fromkeys(CALL_PROPERTIES, value)
    url = render(template, call=call, record=record)
    if url is not None:
        scheme = url.split(":", 1)[0].translate(str.maketrans("", "", "\t\n\r")).lower()
        assert scheme in ALLOWED_SCHEMES


@given(
    st.one_of(st.text(), st.text(alphabet="aZ09_.~- %/+@")),
    st.sampled_from([c for c in _Context if c not in (_Context.URL, _Context.HOST)]),
)
def test_values_are_encoded_exactly_as_quote_encodes_them(value: str, context: _Context) -> None:
    assert _encode(value, context) == quote(value, safe=_SAFE_CHARACTERS.get(context, ""), errors="replace")


@given(st.text(alphabet="aZ09_.~-!#$&'()*+,/:;=?@[]% é\\\t\"<>{}|^`", max_size=40))
def test_a_whole_url_value_is_encoded_as_quote_encodes_it(rest: str) -> None:
    url = "https://crm.example.com/" + rest
    expected = _LONE_PERCENT.sub("%25", quote(url.strip(" \t"), safe=_URL_SAFE, errors="replace"))
    assert _as_url(url) == expected
