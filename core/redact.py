"""Log lines without email addresses.

Errors from mail servers, sign-ins and the workflow can quote an address ("550 5.1.1
<jo.bloggs@nhs.net>: no such user"). The ledger and the outbox keep the full text for
caseworkers; what goes to the log has each address replaced.
"""

from __future__ import annotations

import logging
import re

# Starts only where a run of address characters does, with bounded parts: linear.
_ADDRESS = re.compile(r"(?<![\w.+'’-])[\w.+'’-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}")


def without_addresses(text: object) -> str:
    return _ADDRESS.sub("[address]", str(text))


# A database server's detail on a failed statement quotes the values: "DETAIL:  Key
# (email)=(jo.bloggs@nhs.net) already exists.", "Failing row contains (…)", the whole row.
_SERVER_DETAIL = re.compile(r"^\s*(?:DETAIL|HINT|CONTEXT):.*$", re.MULTILINE)


class RedactingFormatter(logging.Formatter):
    """Log lines, tracebacks included, that name nobody: addresses and the database server's
    quoted values go, the error's type and place stay. What is logged is composed by this
    project's code without them; an exception's text, quoted in a line or below it, is not."""

    def format(self, record: logging.LogRecord) -> str:
        text = _SERVER_DETAIL.sub(
            "  (the database server's detail is not logged)", super().format(record)
        )
        return without_addresses(text)
