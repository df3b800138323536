"""Codecs Python knows that no mail charset is: the part is read as UTF-8 or cp1252.

`charset=punycode` ran punycode's decoder, quadratic in the part's length (976 KB: 30 s of
CPU, then parked as too slow), and it and `charset=undefined` raised UnicodeError, which
the fallback did not catch, so the part's text was lost. unicode-escape read backslashes in
the text as escapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.db import Database
from intake.charsets import decode_bytes, known_codec
from intake.pipeline import run_round
from service.config import Config
from tests.test_lone_surrogates import deliver, message
from tests.test_workflow_mail import MANAGER, mail_config, mail_world, the_case
from workflow.env import WorkflowEnv
from workflow.handler import handle_message
from workflow.intake_link import WorkflowLink

NOT_CHARSETS = [
    "punycode",
    "idna",
    "undefined",
    "raw_unicode_escape",
    "unicode-escape",
    "charmap",
    "base64_codec",
    "zlib_codec",
    "bz2_codec",
    "uu_codec",
    "quopri_codec",
    "hex_codec",
    "rot13",
]
REQUEST = b"Please set up Jane Smith, jane.smith@nhs.net, as GPP admin for A81001."


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


@pytest.mark.parametrize("charset", NOT_CHARSETS)
def test_a_codec_that_is_no_charset_is_unknown(charset: str) -> None:
    assert known_codec(charset) is None
    assert decode_bytes(b"C:\\new\\u00e9 xn--a-9", charset) == (
        "C:\\new\\u00e9 xn--a-9",
        f"unknown charset {charset!r}",
    )


@pytest.mark.parametrize("charset", ["utf-8", "cp1252", "iso-8859-8-i", "utf-7", "gb2312"])
def test_real_charsets_are_still_known(charset: str) -> None:
    assert known_codec(charset) is not None


def test_a_large_punycode_part_is_read_by_the_fallback_not_the_codec() -> None:
    """The part is never given to punycode's decoder, so reading it stays linear: what
    says so is the problem noted, which only a charset left unused gives."""
    data = b"a-" + b"9" * 300_000  # 10 s of CPU in the decoder
    assert decode_bytes(data, "punycode") == (data.decode(), "unknown charset 'punycode'")


@pytest.mark.parametrize("charset", [b"punycode", b"undefined"])
def test_a_request_labelled_with_no_charset_is_read_and_acted_on(
    db: Database, config: Config, env: WorkflowEnv, charset: bytes
) -> None:
    body = REQUEST + b"\r\n\r\n" + b"a-" + b"9" * 200_000
    deliver(config, message(1, b"GPP admin request", body=body, charset=charset))
    report = run_round(db, config, handle_message(env), cases=WorkflowLink())
    assert report.processing.failed == 0
    case = the_case(db, MANAGER[1])
    assert "jane.smith@nhs.net" in str(case.fields)
