"""Sign-in, sessions, CSRF, lock-out and supervisor-only pages, through the ASGI test client."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from starlette.routing import Route
from starlette.testclient import TestClient

from caseworker.accounts import MAX_FAILED_SIGN_INS, find_caseworker
from caseworker.bodylimit import MAX_BODY_BYTES
from caseworker.known_browsers import COOKIE_NAME
from caseworker.throttle import FailureWindow
from tests.fixtures.browser import CASEWORKER, PASSWORD, SUPERVISOR, WebClient, csrf_from


def test_signed_out_requests_go_to_sign_in(web: WebClient) -> None:
    response = web.get("/cases/PCSE-2026-000001?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fcases%2FPCSE-2026-000001%3Fx%3D1"
    assert web.get("/", follow_redirects=False).headers["location"] == "/sign-in"


def test_sign_in_then_the_queue_then_sign_out(web: WebClient) -> None:
    response = web.sign_in()
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = web.get("/")
    assert page.status_code == 200
    assert "Casey Worker" in page.text
    signed_out = web.post_form("/sign-out", {}, follow=False)
    assert signed_out.headers["location"] == "/sign-in"
    assert web.get("/", follow_redirects=False).status_code == 303


def test_sign_in_returns_to_the_page_asked_for_but_never_elsewhere(web: WebClient) -> None:
    token = web.get("/sign-in").text.split('name="csrf_token" value="')[1].split('"')[0]
    data = {"email": CASEWORKER, "password": "correct horse battery staple", "csrf_token": token}
    response = web.client.post("/sign-in?next=//evil.example/", data=data, follow_redirects=False)
    assert response.headers["location"] == "/"
    web.post_form("/sign-out", {})
    token = web.get("/sign-in").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = web.client.post(
        "/sign-in?next=/directory", data={**data, "csrf_token": token}, follow_redirects=False
    )
    assert response.headers["location"] == "/directory"


def test_wrong_password_is_refused_with_an_error_summary(web: WebClient) -> None:
    response = web.sign_in(password="not the password")
    assert response.status_code == 401
    assert "There is a problem" in response.text
    assert 'href="#email"' in response.text
    assert "The email address or password is not right." in response.text
    unknown = web.sign_in(email="nobody@nhs.net")
    assert unknown.status_code == 401
    assert "The email address or password is not right." in unknown.text


def test_empty_fields_are_named(web: WebClient) -> None:
    response = web.sign_in(email="", password="")
    assert response.status_code == 400
    assert "Enter your email address" in response.text
    assert "Enter your password" in response.text


def _refusal(response) -> str:
    return response.text.split("nhsuk-error-summary__list", 1)[1].split("</ul>", 1)[0]


def test_a_locked_account_is_refused_as_an_unknown_address_is(web: WebClient) -> None:
    """Six tries each: the page answers the caseworker's locked account and an address with
    no account alike, so it tells no one which addresses have accounts."""
    answers = {}
    window = timedelta(seconds=web.settings.password_check_window_seconds + 1)
    for email in (CASEWORKER, "nobody.here@nhs.net"):
        for _ in range(MAX_FAILED_SIGN_INS + 1):
            refused = web.sign_in(email=email, password="wrong password!")
            assert refused.status_code == 401
        answers[email] = _refusal(refused)
        web.settings.env.clock.advance(seconds=window.total_seconds())  # past the rate limit
    assert answers[CASEWORKER] == answers["nobody.here@nhs.net"]
    assert "locked for 15 minutes" in answers[CASEWORKER]
    right = web.sign_in()  # the right password, while locked
    assert right.status_code == 401 and _refusal(right) == answers[CASEWORKER]


def test_lock_out_after_five_failures_for_fifteen_minutes(web: WebClient) -> None:
    for _ in range(MAX_FAILED_SIGN_INS):
        assert web.sign_in(password="wrong password!").status_code == 401
    locked = web.sign_in()
    assert locked.status_code == 401
    assert "locked" in locked.text
    clock = web.settings.env.clock
    clock.advance(minutes=14)
    assert web.sign_in().status_code == 401
    clock.advance(minutes=2)
    assert web.sign_in().status_code == 303
    with web.settings.database.transaction() as session:
        account = find_caseworker(session, CASEWORKER)
        assert account.failed_logins == 0


def test_failures_below_the_limit_are_forgotten_after_a_success(web: WebClient) -> None:
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        web.sign_in(password="wrong password!")
    assert web.sign_in().status_code == 303
    web.post_form("/sign-out", {})
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        web.sign_in(password="wrong password!")
    assert web.sign_in().status_code == 303


def test_post_without_csrf_token_is_refused(web: WebClient) -> None:
    web.sign_in()
    response = web.client.post("/sign-out", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert "not sent from a page of this site" in response.text
    wrong = web.client.post("/sign-out", data={"csrf_token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 403
    assert web.get("/").status_code == 200  # still signed in


def test_post_from_another_origin_is_refused(web: WebClient) -> None:
    web.sign_in()
    token = web.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = web.client.post(
        "/sign-out",
        data={"csrf_token": token},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_every_post_route_checks_the_csrf_token(web: WebClient) -> None:
    posts = [
        r for r in web.client.app.routes if isinstance(r, Route) and "POST" in (r.methods or ())
    ]
    assert posts
    for route in posts:
        assert getattr(route.endpoint, "csrf_protected", False), route.path


def test_caseworker_cannot_reach_supervisor_pages(web: WebClient) -> None:
    web.sign_in(CASEWORKER)
    assert web.get("/accounts").status_code == 403
    assert "Only a supervisor can do this." in web.get("/accounts").text
    response = web.post_form(
        "/accounts/add",
        {"email": "new@nhs.net", "name": "New Person", "password": "a long enough password"},
    )
    assert response.status_code == 403
    web.post_form("/sign-out", {})
    web.sign_in(SUPERVISOR)
    assert web.get("/accounts").status_code == 200


def test_a_deactivated_account_loses_its_session(web: WebClient) -> None:
    web.sign_in(CASEWORKER)
    with web.settings.database.transaction() as session:
        find_caseworker(session, CASEWORKER).active = False
    assert web.get("/", follow_redirects=False).status_code == 303


def test_a_copied_session_cookie_stops_working_when_its_owner_signs_out(web: WebClient) -> None:
    from starlette.testclient import TestClient

    web.sign_in(CASEWORKER)
    copied = web.client.cookies.get("pcse_session")
    assert copied
    with TestClient(web.client.app, base_url="http://testserver") as other:
        other.cookies.set("pcse_session", copied)  # someone holding a copy of the cookie
        assert other.get("/", follow_redirects=False).status_code == 200
        web.post_form("/sign-out", {}, follow=False)
        assert other.get("/", follow_redirects=False).status_code == 303
    web.sign_in(CASEWORKER)  # signing in again works, with a new cookie
    assert web.get("/", follow_redirects=False).status_code == 200


def test_security_headers_on_pages(web: WebClient) -> None:
    response = web.get("/sign-in")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_security_headers_on_the_server_error_page(web: WebClient) -> None:
    """Starlette answers an unexpected error outside every middleware."""

    async def broken(request):
        raise RuntimeError("a fault in a page")

    app = web.client.app
    app.router.routes.append(Route("/broken", broken))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert sign_in_status(client, CASEWORKER, PASSWORD) == 303
        response = client.get("/broken")
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_cookie_is_secure_over_tls(web: WebClient) -> None:
    from starlette.testclient import TestClient

    with TestClient(web.client.app, base_url="https://testserver") as tls:
        response = tls.get("/sign-in")
    assert "; Secure" in response.headers["set-cookie"]


def test_a_tampered_session_cookie_is_ignored(web: WebClient) -> None:
    web.sign_in()
    web.client.cookies.set("pcse_session", "tampered.value.here")
    assert web.get("/", follow_redirects=False).status_code == 303


def test_an_oversized_post_is_refused_unread(web: WebClient) -> None:
    """Starlette reads a posted form whole (a mebibyte a field) before the CSRF check: a
    body past the cap is refused first, declared or streamed, signed in or not."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    big = b"email=a&" + b"f=" + b"a" * (MAX_BODY_BYTES + 1)
    declared = web.client.post("/sign-in", content=big, headers=form)
    assert declared.status_code == 413 and declared.headers["x-content-type-options"] == "nosniff"

    def chunks():
        for _ in range(8):
            yield b"a" * (MAX_BODY_BYTES // 4)

    streamed = web.client.post("/sign-in", content=chunks(), headers=form)
    assert streamed.status_code == 413
    # A form of ordinary size still reaches the sign-in page's checks.
    web.sign_in()
    assert web.get("/").status_code == 200


def test_sign_in_spray_from_many_addresses_keeps_out_only_unknown_browsers(
    web: WebClient,
) -> None:
    """One token from one fetch of the sign-in page, posted from ten addresses, uses up the
    shared limit; a browser that has signed in before still signs in, a new one waits."""
    app = web.client.app
    known = TestClient(app, base_url="http://testserver", client=("203.0.113.7", 1))
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    assert known.cookies.get(COOKIE_NAME)
    known.post("/sign-out", data={"csrf_token": csrf_from(known.get("/").text)})
    # Signed in, in a browser that has since lost its cookie: changes a password later.
    desk = TestClient(app, base_url="http://testserver", client=("203.0.113.8", 1))
    assert sign_in_status(desk, SUPERVISOR, PASSWORD) == 303
    desk.cookies.delete(COOKIE_NAME)
    answers = spray(app)
    # The two sign-ins counted too: the last two guesses find the limit used up.
    assert answers == {401: 98, 429: 2}
    stranger = TestClient(app, base_url="http://testserver", client=("192.0.2.9", 1))
    assert sign_in_status(stranger, CASEWORKER, PASSWORD) == 429
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    forged = TestClient(app, base_url="http://testserver", client=("192.0.2.10", 1))
    forged.cookies.set(COOKIE_NAME, known.cookies.get(COOKIE_NAME)[:-2] + "xx")
    assert sign_in_status(forged, CASEWORKER, PASSWORD) == 429
    change = {f: "wrong" for f in ("current_password", "new_password", "confirm_password")}
    change["csrf_token"] = csrf_from(desk.get("/account/password").text)
    assert desk.post("/account/password", data=change).status_code not in (429, 303)


def spray(app) -> Counter:
    """One token from one fetch of the sign-in page, ten guesses from each of ten addresses:
    the shared limit (100 in the tests) used up. The answers, counted by status."""
    first = TestClient(app, base_url="http://testserver", client=("198.51.100.1", 1))
    token = csrf_from(first.get("/sign-in").text)
    session = first.cookies.get("pcse_session")
    answers: Counter = Counter()
    for n in range(10):
        sprayer = TestClient(app, base_url="http://testserver", client=(f"198.51.100.{n + 1}", 1))
        sprayer.cookies.set("pcse_session", session)
        for _ in range(10):
            form = {"email": f"x{n}@example.com", "password": "guess", "csrf_token": token}
            answers[sprayer.post("/sign-in", data=form).status_code] += 1
    return answers


def test_a_known_browser_is_known_only_for_its_own_active_account(web: WebClient) -> None:
    """The cookie lifts the shared limit for sign-ins to the account it names, while that
    account is active: not for guesses at any other account, nor after deactivation."""
    app = web.client.app
    known = TestClient(app, base_url="http://testserver", client=("203.0.113.7", 1))
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    known.post("/sign-out", data={"csrf_token": csrf_from(known.get("/").text)})
    spray(app)
    assert sign_in_status(known, SUPERVISOR, PASSWORD) == 429
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    known.post("/sign-out", data={"csrf_token": csrf_from(known.get("/").text)})
    with web.settings.database.transaction() as session:
        find_caseworker(session, CASEWORKER).active = False
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 429


def sign_in_status(client: TestClient, email: str, password: str) -> int:
    token = csrf_from(client.get("/sign-in").text)
    form = {"email": email, "password": password, "csrf_token": token}
    return client.post("/sign-in", data=form, follow_redirects=False).status_code


def test_an_anonymous_lock_out_does_not_keep_out_the_owners_browser(web: WebClient) -> None:
    """Six anonymous guesses lock the account for everyone else; the browser that signed in
    to it before still gets in, with five wrong passwords of its own to spare."""
    app = web.client.app
    clock = web.settings.env.clock
    known = TestClient(app, base_url="http://testserver", client=("203.0.113.7", 1))
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    known.post("/sign-out", data={"csrf_token": csrf_from(known.get("/").text)})
    attacker = TestClient(app, base_url="http://testserver", client=("198.51.100.1", 1))
    for _ in range(MAX_FAILED_SIGN_INS + 1):
        assert sign_in_status(attacker, CASEWORKER, "wrong password!") == 401
    assert sign_in_status(attacker, CASEWORKER, PASSWORD) == 401  # locked for everyone else
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303
    known.post("/sign-out", data={"csrf_token": csrf_from(known.get("/").text)})
    clock.advance(minutes=1)  # past the per-address rate limit
    for _ in range(MAX_FAILED_SIGN_INS + 1):
        sign_in_status(attacker, CASEWORKER, "wrong password!")
    for _ in range(MAX_FAILED_SIGN_INS):
        assert sign_in_status(known, CASEWORKER, "wrong password!") == 401
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 401  # its own failures count
    clock.advance(minutes=16)
    assert sign_in_status(known, CASEWORKER, PASSWORD) == 303


def test_a_known_browser_s_allowance_is_taken_before_the_password_is_checked() -> None:
    """Tries posted at once all pass a check made before any is counted; a reservation
    taken under one lock lets through no more than the allowance."""
    allowance = FailureWindow(limit=MAX_FAILED_SIGN_INS, window=900)
    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(lambda _: allowance.reserve(7, 1000.0), range(64)))
    assert taken.count(True) == MAX_FAILED_SIGN_INS
    allowance.release(7, 1000.0)  # a try that did not fail gives its place back
    assert allowance.reserve(7, 1000.0) and not allowance.reserve(7, 1000.0)
    assert allowance.reserve(7, 1000.0 + 901)  # the window has passed
