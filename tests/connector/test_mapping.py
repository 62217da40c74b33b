"""Record mapping: templates, dotted paths, phone sources (plain, arrays, vCard)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.connector.mapping import RecordMapper, vcard_phones
from core.connector.paths import resolve, resolve_all, to_text
from core.presets import Template, get_preset
from tests.connector.conftest import api_preset

# ---------------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"first": "Jane", "last": "Doe", "company": "Acme"}, "Jane Doe (Acme)"),
        ({"last": "Doe", "company": "Acme"}, "Doe (Acme)"),
        ({"first": "Jane", "company": "Acme"}, "Jane (Acme)"),
        ({"first": "Jane", "last": "Doe"}, "Jane Doe"),
        ({"first": "  Jane ", "last": "Doe"}, "Jane Doe"),
        ({}, ""),
    ],
)
def test_names_join_without_stray_separators(values: dict[str, str], expected: str) -> None:
    assert Template.parse("{first} {last} ({company})").render_text(values) == expected


def test_comma_separated_name() -> None:
    template = Template.parse("{last}, {first}")
    assert template.render_text({"last": "Doe"}) == "Doe"
    assert template.render_text({"first": "Jane"}) == "Jane"
    assert template.render_text({"first": "Jane", "last": "Doe"}) == "Doe, Jane"


def test_words_in_a_template_are_kept() -> None:
    assert Template.parse("Account {id}").render_text({"id": "7"}) == "Account 7"


def test_url_with_a_missing_part_is_empty_not_broken() -> None:
    template = Template.parse("https://app.example.com/{portal}/record/{id}")
    assert template.render_url({"portal": "42", "id": "7"}) == "https://app.example.com/42/record/7"
    assert template.render_url({"portal": "42"}) == ""


def test_literal_braces() -> None:
    assert Template.parse("{{x}} {y}").render({"y": "1"}) == "{x} 1"


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.text(alphabet="xyzäß \t", max_size=8), max_size=3))
def test_rendered_text_never_has_stray_spaces(values: dict[str, str]) -> None:
    rendered = Template.parse("{a} {b}, {c}").render_text(values)
    assert rendered == rendered.strip()
    assert "  " not in rendered
    assert not rendered.startswith(",") and not rendered.endswith(",")


# -------------------------------------------------------------------------------------------------- paths


def test_paths() -> None:
    body = {"@odata.nextLink": "u", "paging": {"next": {"after": "9"}}, "items": [{"id": 1}, {"id": 2}]}
    assert resolve(body, "@odata.nextLink") == "u"
    assert resolve(body, "paging.next.after") == "9"
    assert resolve(body, "items.1.id") == 2
    assert resolve(body, "items.5.id") is None
    assert resolve(body, "paging.prev.before") is None
    assert resolve(body, None) is body
    assert resolve_all(body, "items[].id") == [1, 2]
    assert resolve_all(body, "missing[].id") == []


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (12, "12"), (12.0, "12"), (2.5, "2.5"), (["a", None, "b"], "a, b"), ({"x": 1}, "")],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


# -------------------------------------------------------------------------------------------------- vCard


def test_vcard_tel_lines() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:1\r\nFN:Ada Lovelace\r\n"
        "TEL;TYPE=work,voice:+44 20 7946 0000\r\n"
        "TEL;TYPE=cell:+44 7700 900000\r\n"
        "TEL;WORK;FAX:+44 20 7946 0001\r\n"
        "TEL;type=HOME;type=VOICE:+44 20 7946 \r\n 0002\r\n"
        'TEL;VALUE=uri;PREF=1;TYPE="voice,home":tel:+1-555-555-5555;ext=5555\r\n'
        "item2.TEL:+82 10 1234 5678\r\nitem2.X-ABLabel:_$!<Mobile>!$_\r\n"
        "item3.TEL:+31 20 555 0000\r\nitem3.X-ABLabel:Boat\r\n"
        "TEL:+33 1 23 45 67 89\r\nEND:VCARD\r\n"
    )
    assert vcard_phones(card) == [
        ("Work", "+44 20 7946 0000"),
        ("Mobile", "+44 7700 900000"),
        ("Work Fax", "+44 20 7946 0001"),
        ("Home", "+44 20 7946 0002"),
        ("Home", "+1-555-555-5555;ext=5555"),
        ("Mobile", "+82 10 1234 5678"),
        ("Boat", "+31 20 555 0000"),
        ("Phone", "+33 1 23 45 67 89"),
    ]


def test_vcard_without_numbers() -> None:
    assert vcard_phones("BEGIN:VCARD\nFN:Nobody\nEND:VCARD") == []
    assert vcard_phones("") == []


# ------------------------------------------------------------------------------------------ record mapping

PHONE_OBJECT = """
[[objects]]
type = "people"
label = "People"
path = "/people"
id = "person.id"
phones = [
    { source = "field", path = "person.phone", label = "Phone" },
    { source = "field", path = "person.other_phones", label = "Other" },
    { source = "array", path = "phoneNumbers[].number", label_key = "category", labels = { mobile = "Mobile" } },
    { source = "vcard", path = "card" },
]

[objects.fields]
DisplayName = "{person.first} {person.last}"
Identifier = "{person.id}"
PopUpUri = "{settings.web}/people/{person.id}"
email = "{emails.0.address}"
company = "{org.name}"

[objects.pagination]
style = "offset"
offset_param = "skip"
size_param = "top"
default_size = 10
max_size = 10
"""


def _mapper() -> RecordMapper:
    preset = api_preset(PHONE_OBJECT, settings='[[settings]]\nname = "web"\nlabel = "Web"\nkind = "url"\n')
    return RecordMapper(preset, preset.objects[0], {"api_base_url": "https://x", "web": "https://crm.example.com"})


def test_record_mapping_with_every_phone_source() -> None:
    raw = {
        "person": {
            "id": 77,
            "first": "Zoë",
            "last": "Ångström",
            "phone": "06 12345678",
            "other_phones": ["1", "", None],
        },
        "phoneNumbers": [
            {"number": "+31 6 1", "category": "MOBILE"},
            {"number": "+31 20 2", "category": "work"},
            {"number": "", "category": "home"},
            {"category": "fax"},
        ],
        "emails": [{"address": "zoe@example.com"}],
        "card": "BEGIN:VCARD\nTEL;TYPE=cell:+44 7700 900000\nEND:VCARD",
    }
    record = _mapper().map(raw)
    assert record is not None
    assert record.object_type == "people" and record.record_id == "people:77"
    assert record.fields == {
        "DisplayName": "Zoë Ångström",
        "Identifier": "77",
        "PopUpUri": "https://crm.example.com/people/77",
        "email": "zoe@example.com",
        "company": "",
    }
    assert record.phones == [
        ("Phone", "06 12345678"),
        ("Other", "1"),
        ("Mobile", "+31 6 1"),
        ("work", "+31 20 2"),
        ("Mobile", "+44 7700 900000"),
    ]


def test_missing_parts_do_not_crash() -> None:
    record = _mapper().map({"person": {"id": "a/b c", "last": None}, "phoneNumbers": "not a list", "card": 5})
    assert record is not None
    assert record.fields["DisplayName"] == ""
    assert record.fields["PopUpUri"] == "https://crm.example.com/people/a%2Fb%20c"  # CRM data cannot add a path
    assert record.phones == []


def test_record_without_id_is_skipped() -> None:
    assert _mapper().map({"person": {"first": "No id"}}) is None
    assert _mapper().map("not even an object") is None


def test_hubspot_record_maps_to_the_documented_screen_pop() -> None:
    preset = get_preset("hubspot")
    mapper = RecordMapper(preset, preset.objects[0], {"portal_id": "62515", "access_token": "x", "api_base_url": "y"})
    record = mapper.map({"id": "51", "properties": {"firstname": "Jörg", "lastname": None, "phone": "+49 30 1"}})
    assert record is not None
    assert record.fields["DisplayName"] == "Jörg"
    assert record.fields["PopUpUri"] == "https://app.hubspot.com/contacts/62515/record/0-1/51"
    assert record.phones == [("Phone", "+49 30 1")]
