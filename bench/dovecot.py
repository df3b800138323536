"""A real Dovecot IMAP server for the tests and the benches, on free loopback ports, with
its own config.

One server per test process (per xdist worker), started in well under a second. Each test
gets an account of its own, so tests never see each other's mail. The server accepts
passwords (a passwd-file) and XOAUTH2/OAUTHBEARER (an oauth2 passdb that asks a token
introspection endpoint run here, on loopback). Plain IMAP on one port, IMAPS on another
with a self-signed certificate.
"""

from __future__ import annotations

import contextlib
import functools
import html
import io
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from imapclient import IMAPClient

from service.config import MailboxConfig

DOVECOT = "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- OAuth2 endpoint


class TokenIntrospection:
    """The token-introspection endpoint Dovecot's oauth2 passdb asks about each token."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = (form.get("token") or [""])[0]
                endpoint.requests += 1
                user = endpoint.tokens.get(token)
                document = {"active": True, "username": user} if user else {"active": False}
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def issue(self, username: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- certificate


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# --------------------------------------------------------------------------- the server


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = pcse-test-{instance}
listen = 127.0.0.1
protocols = imap
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""

OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (Dovecot's login, imap and auth processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


@dataclass
class DovecotServer:
    root: Path
    introspection: TokenIntrospection
    port: int = field(default_factory=free_port)
    ssl_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    spare: list[ImapAccount] = field(default_factory=list)

    @property
    def cert_path(self) -> Path:
        return self.root / "cert.pem"

    def write_config(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.chown(self.root / "mail", "dovecot", "dovecot")
        _self_signed(self.root)
        (self.root / "passwd").touch()
        self.write_accounts(200)
        (self.root / "oauth2.conf").write_text(OAUTH2.format(url=self.introspection.url))
        (self.root / "dovecot.conf").write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                ssl_port=self.ssl_port,
                instance=uuid.uuid4().hex[:8],
            )
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dovecot exited: {self.process.stderr.read().decode()}{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start listening{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and every process it started, so client connections drop too."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        children = _children(process.pid)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr:
            process.stderr.close()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n" + "\n".join((self.root / "dovecot.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def write_accounts(self, count: int) -> None:
        """Accounts written before start: Dovecot re-reads a changed passwd-file at most once
        a second, so accounts added one by one while it runs could be refused for a moment."""
        with (self.root / "passwd").open("a") as passwd:
            for _ in range(count):
                account = ImapAccount(self, f"u{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(12))
                passwd.write(f"{account.username}:{{PLAIN}}{account.password}\n")
                self.spare.append(account)

    def add_user(self) -> ImapAccount:
        """A fresh account with an empty mailbox."""
        if not self.spare:
            self.write_accounts(50)
            time.sleep(1.1)
        return self.spare.pop()

    def maildir_of(self, username: str) -> Path:
        return self.root / "mail" / username


@dataclass
class ImapAccount:
    server: DovecotServer
    username: str
    password: str

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.server.port, ssl=False, timeout=30)
        client.login(self.username, self.password)
        return client

    def append(self, messages: list[bytes], folder: str = "INBOX") -> None:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(messages), 200):
                client.multiappend(folder, messages[start : start + 200])
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def bodies(self, folder: str) -> list[bytes]:
        client = self.client()
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [data[uid][b"BODY[]"] for uid in sorted(data)]
        finally:
            client.logout()

    def mailbox_config(self, **overrides: object) -> MailboxConfig:
        box = MailboxConfig(
            name=f"box-{self.username}",
            address=f"{self.username}@example.nhs.uk",
            imap_host="127.0.0.1",
            imap_port=self.server.port,
            imap_ssl=False,
            username=self.username,
            password=self.password,
        )
        return replace(box, **overrides)


def start_dovecot() -> DovecotServer:
    """A running server in a fresh temporary folder (for scripts as well as fixtures);
    end it with `discard_dovecot`."""
    root = Path(tempfile.mkdtemp(prefix="pcse-dovecot-"))
    root.chmod(0o755)  # the login and mail processes run as dovenull and dovecot
    introspection = TokenIntrospection()
    server = DovecotServer(root, introspection)
    try:
        server.write_config()
        server.start()
    except BaseException:
        discard_dovecot(server)
        raise
    return server


def discard_dovecot(server: DovecotServer) -> None:
    """Stop the server and its token endpoint, and remove its folder."""
    server.stop()
    server.introspection.close()
    shutil.rmtree(server.root, ignore_errors=True)


def tls_context(server: DovecotServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.cert_path))


# --------------------------------------------------------------------------- intake helpers


def plain_request(
    number: int,
    *,
    sender: str | None = None,
    subject: str | None = None,
    message_id: str | None = None,
    body: str | None = None,
) -> bytes:
    """A small, well-formed request email, as a practice would send one."""
    sender = sender or f"practice{number}@example.nhs.uk"
    lines = [
        f"From: Practice Manager {number} <{sender}>",
        "To: PCSE Enquiries <pcse.portalenquiries@nhs.net>",
        f"Subject: {subject or f'PL Organisation Administrator request {number}'}",
        f"Message-ID: {message_id or f'<req-{number}-{uuid.uuid4().hex[:10]}@example.nhs.uk>'}",
        "Date: Mon, 02 Feb 2026 09:30:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body
        or (
            f"Please set up Jane Doe {number} (jane.doe{number}@example.nhs.uk) as PL "
            f"Organisation Administrator for practice A8{number % 10000:04d}.\n"
            "Thank you,\nPractice Manager"
        ),
    ]
    # IMAP servers store CRLF line ends; so does this, so that bytes compare equal.
    return ("\r\n".join(lines) + "\r\n").replace("\r\n", "\n").replace("\n", "\r\n").encode()


@functools.cache
def signature_logo() -> bytes:
    """A 120 by 40 PNG, as an email signature's logo (too small to be read as a scan)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 40), (0, 94, 184)).save(out, "PNG")
    return out.getvalue()


def outlook_request(number: int, *, sender: str | None = None, logo: bool = False) -> bytes:
    """The same request as Outlook on NHSmail sends one: a header section of relays and
    Exchange's stamps (about 7 KB) and a plain and a Word-made HTML body (about 13 KB);
    with `logo`, a logo in the signature (which is read as a possible form)."""
    sender = sender or f"practice{number}@example.nhs.uk"
    msg = EmailMessage(policy=SMTP)
    for hop in range(8):
        msg["Received"] = (
            f"from AM{hop}PR02MB{number % 9000 + 1000}.eurprd02.prod.outlook.com "
            f"(2603:10a6:20b:{hop}a::{number % 97}) by "
            f"AM{hop + 1}PR02CA00{hop}.outlook.office365.com "
            f"(2603:10a6:208:{hop}::{hop}) with Microsoft SMTP Server (version=TLS1_2, "
            "cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7452.28; "
            "Mon, 2 Feb 2026 09:30:0{0} +0000".format(hop)
        )
    msg["ARC-Seal"] = "i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none; b=" + (
        "Qm9ndXMgc2lnbmF0dXJlIGJ5dGVzIGZvciBhIGJlbmNobWFyaw" * 6
    )
    msg["ARC-Message-Signature"] = (
        "i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com; s=arcselector9901; "
        "h=From:Date:Subject:Message-ID:Content-Type:MIME-Version; bh="
        + "c2lnbmVkIGJvZHkgaGFzaA" * 3
        + "; b="
        + "QVJDIG1lc3NhZ2Ugc2lnbmF0dXJl" * 8
    )
    msg["DKIM-Signature"] = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=nhs.net; s=selector1; "
        "h=From:Date:Subject:Message-ID:Content-Type:MIME-Version; bh="
        + "Ym9keSBoYXNo" * 4
        + "; b="
        + "REtJTSBzaWduYXR1cmUgYnl0ZXM" * 8
    )
    for name in (
        "X-MS-Exchange-Organization-Network-Message-Id",
        "X-MS-Exchange-CrossTenant-OriginalArrivalTime",
        "X-MS-Exchange-CrossTenant-FromEntityHeader",
        "X-MS-Exchange-CrossTenant-Id",
        "X-MS-Exchange-Transport-CrossTenantHeadersStamped",
        "X-MS-PublicTrafficType",
        "X-MS-TrafficTypeDiagnostic",
        "X-MS-Office365-Filtering-Correlation-Id",
        "X-Microsoft-Antispam",
        "X-Forefront-Antispam-Report",
    ):
        msg[name] = f"{uuid.uuid4()}; CIP:255.255.255.255;CTRY:GB;LANG:en;SCL:1;SRV:;IPV:NLI"
    msg["From"] = f"Practice Manager {number} <{sender}>"
    msg["To"] = "PCSE Enquiries <pcse.portalenquiries@nhs.net>"
    msg["Subject"] = f"PL Organisation Administrator request {number}"
    msg["Message-ID"] = (
        f"<AM0PR02MB{number}{uuid.uuid4().hex[:12]}@AM0PR02MB.eurprd02.prod.outlook.com>"
    )
    msg["Date"] = "Mon, 02 Feb 2026 09:30:00 +0000"
    text = (
        f"Hello,\n\nPlease set up Jane Doe {number} (jane.doe{number}@example.nhs.uk) as PL "
        f"Organisation Administrator for practice A8{number % 10000:04d}.\n\n"
        "Kind regards\n\nPractice Manager\nThe Surgery, High Street\nTel: 01632 960000\n\n"
        "********************************************************************\n"
        "This message may contain confidential information. If you are not the intended "
        "recipient please inform the sender that you have received the message in error "
        "before deleting it.\n"
    )
    msg.set_content(text)
    paragraphs = "".join(
        f'<p class=MsoNormal><span style=\'font-size:11.0pt;font-family:"Calibri",sans-serif;'
        f"color:#1F497D'>{html.escape(line) or '&nbsp;'}<o:p></o:p></span></p>\n"
        for line in text.splitlines()
    )
    styles = "".join(
        f"p.MsoStyle{i}, li.MsoStyle{i}, div.MsoStyle{i} {{margin:0cm; font-size:11.0pt; "
        f'font-family:"Calibri",sans-serif; mso-style-priority:{i};}}\n'
        for i in range(60)
    )
    msg.add_alternative(
        '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:'
        'office:office"><head><meta http-equiv=Content-Type content="text/html; '
        f'charset=utf-8"><style><!--\n{styles}--></style></head>'
        f'<body lang=EN-GB link="#0563C1" vlink="#954F72"><div class=WordSection1>\n'
        f'{paragraphs}<p><img width=120 height=40 src="cid:image001.png@01DA0000"></p>'
        "</div></body></html>",
        subtype="html",
    )
    if logo:
        msg.get_payload()[1].add_related(
            signature_logo(),
            "image",
            "png",
            cid="<image001.png@01DA0000>",
            filename="image001.png",
        )
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
