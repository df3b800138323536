"""Who sent a message: the strict From reading and the two trust profiles, as an attacker
would try them (encoded display names, two mailboxes, forged verdict headers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.addresses import MAX_FROM_CHARS, parse_from, recipient_addresses
from core.authresults import AuthResultsError, parse
from core.senderauth import Profile, SenderPolicy, Status, authenticate
from intake.mailparse import parse_mail
from service.cli import cli
from service.config import (
    ConfigError,
    from_mapping,
    load,
    local_defaults,
    require_sender_authentication,
)

SAMPLES = Path(__file__).parent / "corpus" / "senderauth"
MS365 = SenderPolicy(Profile.MICROSOFT365, internal_domains=("nhs.net",))
MX = "mx.nhs.test"
AUTHSERV = SenderPolicy(Profile.AUTHSERV_ID, trusted_authserv_ids=(MX,))


def verdict_of(raw: bytes, policy: SenderPolicy):
    mail = parse_mail(raw)
    return authenticate(policy, mail.sender_identity, mail.authentication_results, mail.auth_as)


def message(from_header: str, *headers: str) -> bytes:
    head = "\r\n".join(
        [
            *headers,
            f"From: {from_header}",
            "To: pcse.portalenquiries@nhs.net",
            "Subject: hello",
            "MIME-Version: 1.0",
        ]
    )
    return (head + "\r\n\r\nAPPROVE\r\n").encode()


# --------------------------------------------------------------------------- the From header


@pytest.mark.parametrize(
    ("header", "address", "name"),
    [
        (
            '"PATEL, Anil (THE SURGERY)" <a.patel@nhs.net>',
            "a.patel@nhs.net",
            "PATEL, Anil (THE SURGERY)",
        ),
        ("Dr. A. Patel <A.Patel@NHS.net>", "a.patel@nhs.net", "Dr. A. Patel"),
        ("a.patel@nhs.net", "a.patel@nhs.net", ""),
        ("=?utf-8?b?w4lsw7Zpc2U=?= <e@nhs.net>", "e@nhs.net", "Éløise".replace("ø", "ö")),
        ("Jane\r\n Smith <j@nhs.net>", "j@nhs.net", "Jane Smith"),
        ('"Se\u00e1n O\u2019Brien" <s@nhs.net>', "s@nhs.net", "Se\u00e1n O\u2019Brien"),
    ],
)
def test_ordinary_from_headers_name_one_verified_mailbox(
    header: str, address: str, name: str
) -> None:
    sender = parse_from([header])
    assert sender.parsed_cleanly, sender.problem
    assert (sender.address, sender.display_name) == (address, name)


@pytest.mark.parametrize(
    ("header", "address"),
    [
        # The attack: an encoded CR/LF in the display name made the old fallback decode first
        # and read the address inside the display name.
        ("=?utf-8?q?someone=40nhs.net=0A=28?= <other@nhs.net>", None),
        # An address in the display name: only the real addr-spec counts, and it is unverified.
        ("=?utf-8?q?approver=40nhs.net?= <other@nhs.net>", "other@nhs.net"),
        ('"approver@nhs.net" <other@nhs.net>', "other@nhs.net"),
        ("Jane <j@nhs.net>, Bob <b@nhs.net>", None),
        ("O'Brien, Sean <s@nhs.net>", "s@nhs.net"),  # an unquoted comma: two mailboxes or worse
        ('Jane <"j@x"@nhs.net>', None),
        ("Jane <j@[192.0.2.1]>", None),
        ("undisclosed-recipients:;", None),
        ("(" * 600 + "a@nhs.net", None),
        # Read as the plain address by this parser, but not written plainly: a mail server
        # that checked the sender may have read them otherwise.
        ('Anil <"a.patel"@nhs.net>', "a.patel@nhs.net"),
        ("a.patel(x)@nhs.net", "a.patel@nhs.net"),
        ("<@evil.example:a.patel@nhs.net>", "a.patel@nhs.net"),
        ("Approvers: a.patel@nhs.net;", "a.patel@nhs.net"),
        # Lookalike brackets and at signs, and a right-to-left override, in the display name.
        ("Anil Patel \uff1ca.patel\uff20nhs.net\uff1e <m@nhs.net>", "m@nhs.net"),
        ("Anil \u202ePatel <m@nhs.net>", "m@nhs.net"),
        # The same inside quotes, and control characters there (NUL stopped PostgreSQL's
        # polls): the quoted form's quick reading had taken them as they came.
        ('"a.patel\uff20nhs.net" <m@nhs.net>', "m@nhs.net"),
        ('"Anil \u202ePatel" <m@nhs.net>', "m@nhs.net"),
        ('"Anil\x00Patel" <m@nhs.net>', "m@nhs.net"),
        ('"Anil\x1bPatel" <m@nhs.net>', "m@nhs.net"),
        ("Anil\x9b31mPatel <m@nhs.net>", "m@nhs.net"),
    ],
)
def test_from_headers_that_do_not_read_cleanly_leave_the_sender_unverified(
    header: str, address: str | None
) -> None:
    sender = parse_from([header])
    assert not sender.parsed_cleanly
    assert sender.problem
    assert sender.address == address
    assert sender.address != "approver@nhs.net"
    assert "\x00" not in sender.display_name and "\x1b" not in sender.display_name


def test_two_from_headers_leave_the_sender_unverified() -> None:
    sender = parse_from(["a@nhs.net", "b@nhs.net"])
    assert sender.address is None
    assert "2 From headers" in (sender.problem or "")


def test_several_huge_from_headers_are_not_parsed_either() -> None:
    """Each From header is capped, however many there are (a child process: a regression
    fails on its deadline rather than hanging the suite)."""
    script = (
        "from intake.mailparse import parse_mail\n"
        "raw = b''.join(b'From: ' + c * 2_000_000 + b'\\r\\n' for c in (b'\"', b'(', b'a'))\n"
        "mail = parse_mail(raw + b'Subject: x\\r\\n\\r\\nbody')\n"
        "print(mail.sender_identity.problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "3 From headers" in done.stdout


def test_an_overlong_from_header_is_not_parsed() -> None:
    sender = parse_from(["x" * (MAX_FROM_CHARS + 1) + " <a@nhs.net>"])
    assert sender.address is None and "characters long" in (sender.problem or "")


def test_parse_mail_never_reads_an_address_out_of_a_display_name() -> None:
    raw = message("=?utf-8?q?a.patel=40nhs.net=0D=0A?= <mallory@nhs.net>")
    mail = parse_mail(raw)
    assert mail.sender != "a.patel@nhs.net"
    assert not mail.sender_identity.parsed_cleanly
    assert all(address != "a.patel@nhs.net" for _, address in mail.from_addresses)


def test_recipients_skip_display_names_and_comments() -> None:
    found, cut = recipient_addresses(
        ['"x@evil.test" <a@nhs.net>, b@nhs.net (c@evil.test), Foo <g+APV-1@nhs.net>; d@nhs.net']
    )
    assert found == ["a@nhs.net", "b@nhs.net", "g+apv-1@nhs.net", "d@nhs.net"]
    assert cut == []


def test_recipient_headers_are_bounded_and_the_cut_is_said() -> None:
    found, cut = recipient_addresses(["a@nhs.net"] * 50 + ["b@nhs.net " + " " * 20_000])
    assert found == ["a@nhs.net"]
    assert any("To/Cc headers" in c for c in cut)


# Each hostile header value as an expression the child process builds (64,000 characters is
# the most the old parser read, and took half an hour on).
HOSTILE_ADDRESS_HEADERS = {
    "spaces": "' ' * 64_000",
    "folded spaces": "('\\r\\n ' + ' ' * 70) * 900",
    "angle brackets": "'<' * 64_000",
    "quotes": "'\"' * 64_000",
    "at signs": "'@' * 64_000",
    "encoded words": "'=?' * 32_000",
    "comments": "'(' * 64_000",
    "backslashes": "'\\\\' * 64_000",
    "name runs": "('a ' * 30_000) + '<a@nhs.net>'",
}


def test_hostile_address_headers_parse_quickly_in_a_child_process() -> None:
    """Every header in From, To and Cc, in a child with a timeout: a regression to
    super-linear parsing fails here instead of hanging the suite."""
    lines = ["import time", "from intake.mailparse import parse_mail", "worst = 0.0"]
    for expression in HOSTILE_ADDRESS_HEADERS.values():
        lines += [
            f"value = {expression}",
            "for field in ('From', 'To', 'Cc'):",
            "    raw = (field + ': ' + value + '\\r\\nSubject: x\\r\\n\\r\\nbody').encode()",
            "    start = time.perf_counter()",
            "    parse_mail(raw)",
            "    worst = max(worst, time.perf_counter() - start)",
        ]
    lines.append("print(worst)")
    done = subprocess.run(
        [sys.executable, "-"],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) < 1.0


# --------------------------------------------------------------------------- Authentication-Results


def test_exchange_online_results_without_an_authserv_id_are_read() -> None:
    found = parse(
        "spf=pass (sender IP is 209.85.1.2) smtp.mailfrom=x.nhs.uk; dkim=pass "
        "(signature was verified) header.d=x.nhs.uk;dmarc=pass action=none "
        "header.from=x.nhs.uk;compauth=pass reason=100"
    )
    assert found.authserv_id is None
    dmarc = found.of("dmarc")[0]
    assert (dmarc.result, dmarc.prop("header.from")) == ("pass", "x.nhs.uk")


@pytest.mark.parametrize(
    "value",
    [
        "mx.nhs.test; dmarc",
        "mx.nhs.test; dmarc=pass (unclosed",
        "mx.nhs.test a b; dmarc=pass",
        "x" * 9000,
        "dmarc=pass header.from=evil.example header.from=nhs.net",
    ],
)
def test_unreadable_results_raise(value: str) -> None:
    with pytest.raises(AuthResultsError):
        parse(value)


# --------------------------------------------------------------------------- authserv-id profile


def ar(authserv: str, result: str = "pass", domain: str = "nhs.net") -> str:
    return (
        f"Authentication-Results: {authserv}; spf={result} smtp.mailfrom={domain}; "
        f"dmarc={result} (p=reject) header.from={domain}"
    )


def test_authserv_id_trusts_the_receiving_servers_pass() -> None:
    verdict = verdict_of(message("a.patel@nhs.net", ar(MX)), AUTHSERV)
    assert verdict.status is Status.AUTHENTICATED
    assert verdict.vouched_by == f"Authentication-Results: {MX}"


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ([ar("mx.attacker.test"), ar(MX)], "below one that is not trusted"),
        ([ar(MX), ar("relay.other.test"), ar(MX)], "below one that is not trusted"),
        ([ar(MX), ar(MX, "fail")], "dmarc=fail"),
        ([ar(MX, domain="other.test")], "From domain is nhs.net"),
        ([ar("mx.attacker.test")], "No Authentication-Results header from a trusted"),
        ([f"Authentication-Results: {MX}; dmarc=pass (unclosed"], "could not be read"),
        ([], "No Authentication-Results header from a trusted"),
        # The top header reports no DMARC; two passes written below it, under the trusted
        # id, do not make up for it, nor do two in one header.
        (
            [
                f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=nhs.net; dkim=none",
                f"Authentication-Results: {MX}; dmarc=pass header.from=nhs.net; "
                "dmarc=pass header.from=nhs.net",
            ],
            "each must report one DMARC result",
        ),
        (
            [
                f"Authentication-Results: {MX}; dmarc=pass header.from=nhs.net; "
                "dmarc=pass header.from=nhs.net"
            ],
            "each must report one DMARC result",
        ),
    ],
)
def test_authserv_id_refuses_forged_or_disagreeing_headers(headers: list[str], said: str) -> None:
    verdict = verdict_of(message("a.patel@nhs.net", *headers), AUTHSERV)
    assert verdict.status is Status.NOT_AUTHENTICATED
    assert said in verdict.detail


# --------------------------------------------------------------------------- microsoft365 profile


@pytest.mark.parametrize(
    ("sample", "status", "vouched"),
    [
        ("internal.eml", Status.AUTHENTICATED, "AuthAs: Internal"),
        ("external-pass.eml", Status.AUTHENTICATED, "Anonymous and Authentication-Results"),
        ("external-fail.eml", Status.NOT_AUTHENTICATED, None),
        ("forged-authas.eml", Status.NOT_AUTHENTICATED, None),
    ],
)
def test_microsoft365_samples(sample: str, status: Status, vouched: str | None) -> None:
    verdict = verdict_of((SAMPLES / sample).read_bytes(), MS365)
    assert verdict.status is status, verdict.detail
    if vouched:
        assert vouched in (verdict.vouched_by or "")
    else:
        assert verdict.vouched_by is None


def test_the_forged_pass_below_exchanges_own_header_is_not_read() -> None:
    mail = parse_mail((SAMPLES / "external-fail.eml").read_bytes())
    assert len(mail.authentication_results) == 2
    assert "dmarc=pass" in mail.authentication_results[1]
    verdict = authenticate(MS365, mail.sender_identity, mail.authentication_results, mail.auth_as)
    assert "dmarc=fail" in verdict.detail


@pytest.mark.parametrize(
    ("auth_as", "results", "said"),
    [
        ([], [], "0 X-MS-Exchange-Organization-AuthAs"),
        (["Internal", "Internal"], [], "2 X-MS-Exchange-Organization-AuthAs"),
        (["Partner"], [], "neither Internal nor Anonymous"),
        (["Anonymous"], [], "no Authentication-Results"),
        (["Anonymous"], [f"{MX}; dmarc=pass header.from=nhs.net"], "names mx.nhs.test"),
    ],
)
def test_microsoft365_refuses_what_exchange_would_not_write(
    auth_as: list[str], results: list[str], said: str
) -> None:
    sender = parse_from(["a.patel@nhs.net"])
    verdict = authenticate(MS365, sender, results, auth_as)
    assert verdict.status is Status.NOT_AUTHENTICATED
    assert said in verdict.detail


def test_internal_vouches_only_for_the_tenants_domains() -> None:
    sender = parse_from(["someone@riverside-surgery.co.uk"])
    verdict = authenticate(MS365, sender, [], ["Internal"])
    assert verdict.status is Status.NOT_AUTHENTICATED


def test_an_unverified_from_is_never_authenticated_whatever_the_headers() -> None:
    raw = (
        (SAMPLES / "internal.eml")
        .read_bytes()
        .replace(
            b'From: "PATEL, Anil (THE SURGERY)" <a.patel@nhs.net>',
            b"From: =?utf-8?q?a.patel=40nhs.net=0A?= <mallory@nhs.net>",
        )
    )
    verdict = verdict_of(raw, MS365)
    assert verdict.status is Status.UNVERIFIED
    assert not verdict.trusted


def test_profile_none_checks_nothing_and_authenticates_nobody() -> None:
    verdict = verdict_of(message("a.patel@nhs.net"), SenderPolicy(Profile.NONE))
    assert verdict.status is Status.NOT_CHECKED
    assert verdict.trusted and not verdict.authenticated


# --------------------------------------------------------------------------- configuration


def test_the_example_configuration_authenticates_senders_as_nhsmail_does() -> None:
    config = load(Path(__file__).parent.parent / "config.example.toml")
    assert config.security.policy().profile is Profile.MICROSOFT365
    require_sender_authentication(config)  # does not raise


@pytest.mark.parametrize(
    ("security", "said"),
    [
        ({"sender_authentication": "dkim"}, "must be one of"),
        ({"sender_authentication": "authserv-id"}, "needs the receiving server's authserv-id"),
        ({"sender_authentication": "microsoft365", "internal_domains": []}, "internal_domains"),
    ],
)
def test_a_security_section_that_cannot_work_is_refused(security: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        from_mapping({"security": security})


def test_unauthenticated_senders_are_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="Senders are not authenticated"):
        require_sender_authentication(local_defaults())
    allowed = from_mapping(
        {"security": {"sender_authentication": "none", "allow_unauthenticated_senders": True}}
    )
    require_sender_authentication(allowed)


@pytest.mark.parametrize("command", [["poll", "--once"], ["run"]])
def test_the_service_refuses_the_local_defaults_with_one_sentence(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pcse"), *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Senders are not authenticated" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var" / "maildir").exists()  # refused before touching anything


def test_check_message_says_what_vouched(tmp_path: Path) -> None:
    config = tmp_path / "pcse.toml"
    config.write_text('[security]\nsender_authentication = "microsoft365"\n')
    good = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "security",
            "check-message",
            "--json",
            str(SAMPLES / "internal.eml"),
        ],
    )
    assert good.exit_code == 0, good.output
    document = json.loads(good.output)
    assert document["status"] == "authenticated"
    assert document["vouched_by"] == "X-MS-Exchange-Organization-AuthAs: Internal"
    assert document["from_address"] == "a.patel@nhs.net"
    bad = CliRunner().invoke(
        cli,
        ["--config", str(config), "security", "check-message", str(SAMPLES / "forged-authas.eml")],
    )
    assert bad.exit_code == 1
    assert "not_authenticated" in bad.output
    assert "2 X-MS-Exchange-Organization-AuthAs" in bad.output
