"""Normalising what people write, and form definitions as data."""

from __future__ import annotations

import tomllib
from datetime import date

import pytest
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.catalogue import SIGNER_CAPACITIES
from forms.definitions import DefinitionError, definitions, parse_definition
from forms.normalise import (
    clean_ods,
    email_candidate,
    guess_org_type,
    is_ticked,
    is_valid_ods,
    normalise_capacity,
    normalise_email,
    parse_date,
    plain_address,
    tidy_name,
    validated_email,
)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("20/11/2026", date(2026, 11, 20)),
        ("20 Nov 2026", date(2026, 11, 20)),
        ("2026-11-20", date(2026, 11, 20)),
        ("20.11.26", date(2026, 11, 20)),
        ("20-11-2026", date(2026, 11, 20)),
        ("20th November 2026", date(2026, 11, 20)),
        ("Friday 20 November 2026", date(2026, 11, 20)),
        ("November 20, 2026", date(2026, 11, 20)),
        ("1/2/26", date(2026, 2, 1)),  # day first, as written in England
        (" 3 Dec 26 ", date(2026, 12, 3)),
    ],
)
def test_dates_in_the_forms_people_write(written: str, expected: date) -> None:
    assert parse_date(written) == expected


@pytest.mark.parametrize("written", ["31/02/2026", "tomorrow", "", "20/13/2026", "2026", None])
def test_not_dates(written: str | None) -> None:
    assert parse_date(written) is None


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("GP Partner", "gp_partner"),
        ("gp partner", "gp_partner"),
        ("Senior Partner", "gp_partner"),
        ("Caldicott Guardian", "caldicott_guardian"),
        ("caldicot guardian", "caldicott_guardian"),
        ("Company Director", "company_director"),
        ("ICB", "icb"),
        ("NHS Integrated Care Board", "icb"),
        ("Practice Manager", None),
        ("", None),
    ],
)
def test_signer_capacities(written: str, expected: str | None) -> None:
    assert normalise_capacity(written) == expected
    if expected and expected != "icb":
        assert expected in SIGNER_CAPACITIES


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("jane SMITH", "Jane Smith"),
        ("JANE O'BRIEN", "Jane O'Brien"),
        ("  Dr  A   Patel ", "Dr A Patel"),
        ("angus MCDONALD", "Angus McDonald"),
        ("Sarah de la Cruz", "Sarah de la Cruz"),
        ("mary-jane smith-jones", "Mary-Jane Smith-Jones"),
    ],
)
def test_names_tidied(written: str, expected: str) -> None:
    assert tidy_name(written) == expected


def test_codes_cleaned_and_checked_by_organisation_kind() -> None:
    assert clean_ods(" a81 001 ") == "A81001"
    assert is_valid_ods("A81001", "gp_practice") and not is_valid_ods("A8100", "gp_practice")
    assert is_valid_ods("U12345", "pcn") and not is_valid_ods("A81001", "pcn")
    assert is_valid_ods("QHM", "icb") and is_valid_ods("FW844", "pharmacy")
    assert guess_org_type("U12345") == "pcn" and guess_org_type("A8100") is None


def test_email_addresses_with_stray_spaces_and_case() -> None:
    assert normalise_email(email_candidate(" Chloe.Evans @NHS.net ")) == "chloe.evans@nhs.net"
    assert normalise_email(email_candidate("<mailto:jo@nhs.net>")) == "jo@nhs.net"
    assert normalise_email("jane.smith@nhs") is None
    assert normalise_email("not an address") is None


# Addresses of the plain shape (some near the 254-character limit), and addresses just
# off it: odd characters (a comma, a space, an underscore, letters that match ASCII ones
# only case-insensitively or once normalised), dots and hyphens in odd places, Punycode
# and reserved labels, numeric and special-use TLDs, 64-character labels.
_CLEAN_ATOM = st.from_regex(r"[A-Za-z0-9_%+\-]{1,12}", fullmatch=True)
_CLEAN_LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9\-]{0,8}[A-Za-z0-9])?", fullmatch=True)
_CLEAN_TLD = st.from_regex(r"[A-Za-z]{2,8}", fullmatch=True)
_PAD = st.sampled_from([0, 0, 0, 0, 0, 0, 200, 230])


def _address(
    local: st.SearchStrategy[str], label: st.SearchStrategy[str], tld: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    return st.builds(
        lambda pad, local, labels, tld: f"{'a' * pad}{local}@{'.'.join(labels)}.{tld}",
        _PAD,
        local,
        st.lists(label, min_size=1, max_size=3),
        tld,
    )


_PLAIN = _address(
    st.lists(_CLEAN_ATOM, min_size=1, max_size=3).map(".".join), _CLEAN_LABEL, _CLEAN_TLD
)
_ODD = st.sampled_from([",", " ", "_", "!", "#", "\u017f", "\u212a", "\u0131", "\u00e9", "\ufb01"])
_ATOM = _CLEAN_ATOM | st.builds(
    lambda a, odd, b: a + odd + b,
    st.from_regex(r"[a-z0-9]{0,4}", fullmatch=True),
    _ODD,
    st.from_regex(r"[a-z0-9]{0,4}", fullmatch=True),
)
_NEAR_PLAIN = _address(
    st.builds(
        lambda atoms, glue, edge: edge[0] + glue.join(atoms) + edge[1],
        st.lists(_ATOM, min_size=1, max_size=3),
        st.sampled_from([".", ".."]),
        st.sampled_from([("", ""), (".", ""), ("", ".")]),
    ),
    _CLEAN_LABEL
    | st.from_regex(r"[A-Za-z0-9_\-]{1,10}", fullmatch=True)
    | st.sampled_from(["xn--bcher-kva", "ab--cd", "-a", "a-", "a" * 63, "a" * 64, "\ufb01le"]),
    _CLEAN_TLD
    | st.sampled_from(["123", "ab1", "x", "\u017fk", "a" * 63, "a" * 64])
    | st.sampled_from(SPECIAL_USE_DOMAIN_NAMES).map(str.upper)
    | st.sampled_from(SPECIAL_USE_DOMAIN_NAMES),
)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        _PLAIN,
        _NEAR_PLAIN,
        st.from_regex(r"[A-Za-z0-9.@\-]{1,30}", fullmatch=True),
        st.text(max_size=40),
    )
)
@example("jane.doe@example.nhs.uk")
@example("JANE.DOE@NHS.NET")
@example("a@" + "b" * 63 + ".uk")
@example("a@" + "b" * 64 + ".uk")
@example("a" * 65 + "@nhs.net")
@example("a@" + ".".join(["b" * 60] * 4) + ".uk")
@example("a" * 20 + "@" + ".".join(["b" * 60] * 4) + ".uk")
@example("jo@localhost.test")
@example("jo@xn--bcher-kva.de")
@example("jo@a--b.nhs.uk")
@example("jo..doe@nhs.net")
@example(".jo@nhs.net")
@example("jo.@nhs.net")
@example("jo,doe@nhs.net")
@example("jo doe@nhs.net")
@example("jo@nhs_trust.nhs.uk")
@example("jo@nhs." + "a" * 64)
@example("jo@nhs.\u017fk")  # long s: matches [a-z] only case-insensitively
@example("\u212aim@nhs.net")  # Kelvin sign
@example("jo@\ufb01le.net")  # the fi ligature, remapped by UTS-46
def testplain_addresses_are_normalised_as_email_validator_would(value: str) -> None:
    candidate = value.strip().strip("<>").strip()
    validated = validated_email(candidate) if candidate else None
    # Only ASCII addresses are kept (an internationalised one is refused, below).
    assert normalise_email(value) == (validated if validated and validated.isascii() else None)


@pytest.mark.parametrize(
    "address",
    [
        "jane.smith@nh\u0455.net",
        "\uff4aane.smith@nhs.net",
        "jo@xn--bcher-kva.de",
        "jo@b\u00fccher.de",
    ],
)
def test_an_address_that_is_not_ascii_is_refused(address: str) -> None:
    """A look-alike ("nhѕ.net", with a Cyrillic "ѕ") would be approved as the real one."""
    assert normalise_email(address) is None


def test_the_plain_examples_do_take_the_plain_shape() -> None:
    # The property above tests the shortcut only on the examples it takes.
    taken = 0

    @settings(max_examples=400, deadline=None, database=None)
    @given(_PLAIN)
    def count(value: str) -> None:
        nonlocal taken
        taken += plain_address(value) is not None

    count()
    assert taken >= 400 * 2 // 3


def test_checkbox_values() -> None:
    assert is_ticked(True) and is_ticked("X") and is_ticked("yes") and is_ticked("✓")
    assert not is_ticked(False) and not is_ticked("") and not is_ticked(None)


# --------------------------------------------------------------------------- definitions

NEW_VERSION = """
version = "PCSE-UMF-GPP v2"
kind = "gpp_admin_form"
blank = "gpp-v2.pdf"
title = "GPP certification v2"
services = ["gpp"]
[parts.A]
required = true
[[sections]]
id = "A"
part = "A"
page = 1
heading = "Part A – Practice"
  [[sections.fields]]
  key = "organisation_code"
  label = "Practice code"
  name = "code"
  type = "ods_code"
  org_kinds = ["gp_practice"]
  required = true
"""


def test_a_new_version_is_data_only() -> None:
    definition = parse_definition(tomllib.loads(NEW_VERSION), "v2")
    assert definition.version == "PCSE-UMF-GPP v2"
    assert definition.field("organisation_code").name == "code"
    assert definition.fields[0].part == "A" and definition.pages == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('type = "ods_code"', 'type = "colour"'), "unknown type"),
        (('org_kinds = ["gp_practice"]', ""), "needs org_kinds"),
        (('part = "A"', 'part = "Z"'), "unknown part"),
        (('key = "organisation_code"', ""), "lacks 'key'"),
    ],
)
def test_broken_definitions_are_refused(change: tuple[str, str], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(tomllib.loads(NEW_VERSION.replace(*change)), "v2")


def test_shipped_definitions_cover_the_three_forms() -> None:
    kinds = {d.kind for d in definitions()}
    assert kinds == {"gpp_admin_form", "user_admin_form", "pcn_admin_form"}
    for definition in definitions():
        keys = {f.key for f in definition.fields}
        assert {"organisation_code", "organisation_name", "signer.name"} <= keys
        assert any(p.signer for p in definition.parts)
