"""Log lines without email addresses.

Errors from mail servers, sign-ins and the workflow can quote an address ("550 5.1.1
<jo.bloggs@nhs.net>: no such user"). The ledger and the outbox keep the full text for
caseworkers; what goes to the log has each address replaced.
"""

from __future__ import annotations

import re

# Starts only where a run of address characters does, with bounded parts: linear.
_ADDRESS = re.compile(r"(?<![\w.+'’-])[\w.+'’-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}")


def without_addresses(text: object) -> str:
    return _ADDRESS.sub("[address]", str(text))
