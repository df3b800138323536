"""Every purpose has its three templates, renders with sample data, and fails on a gap."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from core.catalogue import CATALOGUE, Service
from notifications.purposes import CASE_REQUIRED, PURPOSES, TEMPLATE_SUFFIXES
from notifications.rendering import (
    SHIPPED_TEMPLATES,
    TemplatesFolderMissing,
    check_templates,
    purposes_on_disk,
    render,
)
from notifications.samples import SAMPLE_CONTEXTS, sample_template_context


def test_purposes_on_disk_are_exactly_the_contract_purposes() -> None:
    assert purposes_on_disk() == set(PURPOSES)
    for purpose in PURPOSES:
        for suffix in TEMPLATE_SUFFIXES:
            assert (SHIPPED_TEMPLATES / f"{purpose}{suffix}").is_file(), f"{purpose}{suffix}"


def test_samples_give_each_purpose_exactly_its_context_keys() -> None:
    assert set(SAMPLE_CONTEXTS) == set(PURPOSES)
    for purpose, keys in PURPOSES.items():
        assert set(SAMPLE_CONTEXTS[purpose]) == set(keys), purpose


@pytest.mark.parametrize("purpose", sorted(PURPOSES))
def test_every_template_renders_with_sample_data(purpose: str) -> None:
    rendered = render(purpose, sample_template_context(purpose))
    assert rendered.subject and "\n" not in rendered.subject
    assert "PCSE-2026-000123" in rendered.text
    assert "PCSE-2026-000123" in rendered.html
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "{{" not in part and "{%" not in part
    assert "Dear Alex Smith," in rendered.text or "Dear Dr Sam Patel," in rendered.text
    # Every context value the caller gave shows up in the text part.
    for key, value in SAMPLE_CONTEXTS[purpose].items():
        if isinstance(value, str | int):
            assert str(value) in rendered.text or purpose == "admin_limit_reached", key


@pytest.mark.parametrize("purpose", sorted(set(PURPOSES) - CASE_REQUIRED))
def test_templates_that_may_go_without_a_case_render_without_one(purpose: str) -> None:
    rendered = render(purpose, sample_template_context(purpose, with_case=False))
    assert "PCSE-" not in rendered.text
    assert "Your reference" not in rendered.html


@pytest.mark.parametrize(
    ("purpose", "key"),
    sorted((purpose, key) for purpose, keys in PURPOSES.items() for key in keys),
)
def test_leaving_out_any_context_key_fails_loudly(purpose: str, key: str) -> None:
    context = sample_template_context(purpose)
    del context[key]
    with pytest.raises(UndefinedError):
        render(purpose, context)


@pytest.mark.parametrize("suffix", TEMPLATE_SUFFIXES)
def test_an_undefined_variable_in_an_override_fails(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"outcome_expired{suffix}").write_text("Hello {{ nobody_passed_this }}\n")
    with pytest.raises(UndefinedError):
        render("outcome_expired", sample_template_context("outcome_expired"), str(tmp_path))
    problems = check_templates(str(tmp_path), SAMPLE_CONTEXTS_WITH_EXTRAS)
    assert [p for p in problems if p.startswith("outcome_expired:")]
    assert len(problems) == 1


SAMPLE_CONTEXTS_WITH_EXTRAS = {p: sample_template_context(p) for p in PURPOSES}


def test_shipped_templates_pass_the_check() -> None:
    assert check_templates(None, SAMPLE_CONTEXTS_WITH_EXTRAS) == []


def test_a_file_in_the_configured_folder_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.subject").write_text("Got it: {{ case.ref }}\n")
    (tmp_path / "base.txt").write_text("LOCAL LAYOUT\n{% block body %}{% endblock %}\n")
    rendered = render("acknowledgement", sample_template_context("acknowledgement"), str(tmp_path))
    assert rendered.subject == "Got it: PCSE-2026-000123"
    assert rendered.text.startswith("LOCAL LAYOUT\n")
    # The HTML part was not overridden: the shipped one is used.
    assert "What happens next:" in rendered.html


def test_a_missing_override_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemplatesFolderMissing, match="templates_dir"):
        render(
            "outcome_expired", sample_template_context("outcome_expired"), str(tmp_path / "nowhere")
        )


def test_html_part_is_escaped_and_text_part_is_not() -> None:
    context = sample_template_context("outcome_rejected")
    context["reason"] = 'The form said <script>alert("x")</script> & more'
    context["recipient_name"] = "<b>Bold</b> Name"
    rendered = render("outcome_rejected", context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in rendered.html
    assert "&lt;b&gt;Bold&lt;/b&gt; Name" in rendered.html
    assert '<script>alert("x")</script> & more' in rendered.text
    assert "Dear <b>Bold</b> Name," in rendered.text


def test_approval_request_says_what_for_whom_by_whom_and_how_to_answer() -> None:
    context = sample_template_context("approval_request")
    rendered = render("approval_request", context)
    token = context["token"]
    assert rendered.subject.startswith("[PCSE-2026-000123] Approval needed")
    assert rendered.subject.endswith(token)
    for nominee in context["nominees"]:
        assert f"{nominee['name']} ({nominee['email']})" in rendered.text
        assert ", ".join(nominee["roles"]) in rendered.text
    assert "make Jo Brown (jo.brown@riverside.nhs.net) the Main Contact" in rendered.text
    assert context["requested_by"] in rendered.text
    assert "The Riverside Surgery (A81001)" in rendered.text
    assert "above the quoted text" in rendered.text
    assert "\n    APPROVE\n" in rendered.text
    assert "REJECT followed by the reason" in rendered.text
    assert f"answer by {context['expires_on']}" in rendered.text
    assert token in rendered.html and "APPROVE" in rendered.html


def test_approval_reminder_keeps_the_token_in_the_subject() -> None:
    context = sample_template_context("approval_reminder")
    rendered = render("approval_reminder", context)
    assert "Reminder" in rendered.subject and context["token"] in rendered.subject


@pytest.mark.parametrize("service", [Service.GPP, Service.PL, Service.OPH, Service.PCN])
def test_welcome_says_what_the_role_allows_how_to_sign_in_and_to_hand_it_on(
    service: Service,
) -> None:
    info = CATALOGUE[service]
    context = sample_template_context("welcome_admin") | {"roles": [welcome_role(info)]}
    rendered = render("welcome_admin", context)
    assert info.admin_role in rendered.subject
    for role in info.assignable_roles:
        assert f"- {role}\n" in rendered.text
        assert f"<li>{role}</li>" in rendered.html
    assert "https://pcse.england.nhs.uk" in rendered.text
    assert "sign in with alex.smith@riverside.nhs.net" in rendered.text
    assert f"please give the {info.admin_role} role to a colleague first" in rendered.text
    if info.max_admins:
        assert "up to four for your organisation" in rendered.text
    else:
        assert "up to" not in rendered.text


def welcome_role(info) -> dict:
    return {
        "role": info.admin_role,
        "service_title": info.title,
        "assignable_roles": list(info.assignable_roles),
    }


def test_one_welcome_names_every_admin_role_given_at_once() -> None:
    gpp, pl = CATALOGUE[Service.GPP], CATALOGUE[Service.PL]
    context = sample_template_context("welcome_admin") | {
        "roles": [welcome_role(gpp), welcome_role(pl)]
    }
    rendered = render("welcome_admin", context)
    assert rendered.subject == (
        f"You are now {gpp.admin_role} and {pl.admin_role} for The Riverside Surgery"
    )
    assert "You have been given two roles for The Riverside Surgery" in rendered.text
    for info in (gpp, pl):
        assert f"- {info.admin_role}, for {info.title}\n" in rendered.text
        assert f"What the {info.admin_role} role lets you do" in rendered.text
        assert f"<li><strong>{info.admin_role}</strong>, for {info.title}</li>" in rendered.html
        for role in info.assignable_roles:
            assert f"- {role}\n" in rendered.text
    assert "please give each of these roles to a colleague first" in rendered.text
    assert rendered.text.count("How to sign in") == 1


def test_welcome_main_contact_explains_the_role_cannot_be_handed_on_in_pcse_online() -> None:
    rendered = render("welcome_main_contact", sample_template_context("welcome_main_contact"))
    main = CATALOGUE[Service.MAIN_CONTACT]
    assert f"the {main.admin_role} for The Riverside Surgery" in rendered.text
    for role in main.assignable_roles:
        assert role in rendered.text
    assert "cannot give the role to someone else" in rendered.text
    assert "pcse.portalenquiries@nhs.net before you go" in rendered.text


def test_fifth_admin_reply_states_the_limit_in_words() -> None:
    rendered = render("admin_limit_reached", sample_template_context("admin_limit_reached"))
    assert "at most four for GP Payments and Pensions" in rendered.text
    assert "yours already has four" in rendered.text


def test_an_iso_expiry_date_is_written_out() -> None:
    context = sample_template_context("approval_request") | {"expires_on": "2026-12-06"}
    rendered = render("approval_request", context)
    assert "Please answer by 6 December 2026." in rendered.text
