"""The SMTP sink files into a Maildir folder that already exists, as the README's local
set-up makes it (`mkdir var/sent`, then `python -m notifications.sink`)."""

from __future__ import annotations

import mailbox
import smtplib
from pathlib import Path

from notifications.sink import SmtpSink


def test_the_sink_files_into_an_existing_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "sent"
    folder.mkdir(parents=True)  # made by hand: no new, cur or tmp inside
    sink = SmtpSink("127.0.0.1", 0, maildir=folder)
    with sink, smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        for number in (1, 2):  # the second on the same connection too
            refused = client.sendmail(
                "pcse@example.nhs.uk",
                ["mo@example.nhs.uk"],
                f"Subject: test {number}\r\n\r\nHello\r\n",
            )
            assert refused == {}
    subjects = sorted(message["subject"] for message in mailbox.Maildir(folder, create=False))
    assert subjects == ["test 1", "test 2"]
    # Private, as mailbox.Maildir makes a new one: the emails hold personal data.
    assert {(folder / part).stat().st_mode & 0o777 for part in ("new", "cur", "tmp")} == {0o700}
