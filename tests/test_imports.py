"""Loading the directory from CSV files and NHS ODS's epraccur.csv, on both databases."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.catalogue import Service
from workflow.directory import (
    admins,
    find_ael_contact,
    get_org,
    grant_role,
    main_contact,
    signers_for,
)
from workflow.imports import (
    ImportFileError,
    import_ael,
    import_ods,
    import_organisations,
    import_signers,
    import_users,
)
from workflow.models import AelContact, DirectoryEvent, Organisation, RoleAssignment

SLICE = Path(__file__).parent / "data" / "epraccur-slice.csv"
EXAMPLES = Path(__file__).parent.parent / "examples"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


ORGS = """code,name,type,icb_code
A81001,The Densham Surgery,gp_practice,QHM
a81002 ,Queens Park Medical Centre,GP_Practice,qhm
U12345,Stockton PCN,pcn,QHM
QHM,North East and North Cumbria ICB,icb,
FW844,Corner Pharmacy,pharmacy,
A8100,Short Code Surgery,gp_practice,QHM
A81005,Springwood Surgery,surgery,QHM
A81006,No ICB Surgery,gp_practice,
A81007,Bad ICB Surgery,gp_practice,X12
A81001,The Densham Surgery again,gp_practice,QHM
"""


@pytest.fixture
def loaded(database, tmp_path):
    """The directory with the good organisations of ORGS."""
    with database.transaction() as session:
        import_organisations(session, write(tmp_path, "orgs.csv", ORGS), actor="tester")
    return database


def test_organisations_good_rows_load_bad_rows_reported(database, tmp_path) -> None:
    with database.transaction() as session:
        report = import_organisations(session, write(tmp_path, "orgs.csv", ORGS), actor="tester")
    assert (report.added, report.updated, report.unchanged) == (5, 0, 0)
    assert [str(e) for e in report.errors] == [
        "row 7: 'A8100' is not a valid GP practice code (a letter then five digits, like A81001)",
        "row 8: unknown organisation type 'surgery' (expected one of gp_practice, pcn, icb, "
        "pharmacy, optical)",
        "row 9: the ICB code is missing (every GP practice belongs to an ICB)",
        "row 10: 'X12' is not a valid ICB code (Q then two letters or digits, like QHM)",
        "row 11: A81001 appears again (first on row 2)",
    ]
    assert report.summary() == (
        f"Organisations from {tmp_path / 'orgs.csv'}: 10 rows, 5 added, 0 updated, "
        "0 unchanged, 5 failed."
    )
    with database.transaction() as session:
        org = get_org(session, "A81002")
        assert (org.name, org.type, org.icb_code, org.status) == (
            "Queens Park Medical Centre",
            "gp_practice",
            "QHM",
            "active",
        )
        assert get_org(session, "QHM").icb_code == "QHM"
        assert get_org(session, "FW844").icb_code is None
        assert (
            session.scalar(
                select(func.count())
                .select_from(DirectoryEvent)
                .where(DirectoryEvent.action == "organisation_added")
            )
            == 5
        )


def test_organisations_reimport_updates_what_changed(loaded, tmp_path) -> None:
    changed = ORGS.replace("Stockton PCN", "Stockton Central PCN")
    with loaded.transaction() as session:
        report = import_organisations(
            session, write(tmp_path, "orgs2.csv", changed), actor="tester"
        )
    assert (report.added, report.updated, report.unchanged) == (0, 1, 4)
    with loaded.transaction() as session:
        assert get_org(session, "U12345").name == "Stockton Central PCN"
        event = session.scalars(
            select(DirectoryEvent).where(DirectoryEvent.action == "organisation_updated")
        ).one()
        assert event.detail == {"changed": {"name": ["Stockton PCN", "Stockton Central PCN"]}}
        assert event.reason == "Imported from orgs2.csv"


USERS = """org_code,name,email,role
A81001,Admin One,one@nhs.net,GPP Practice User Administrator
A81001,Admin Two,two@nhs.net,gpp practice user administrator
A81001,Admin Three,three@nhs.net,GPP Practice User Administrator
A81001,Admin Four,four@nhs.net,GPP Practice User Administrator
A81001,Admin Five,five@nhs.net,GPP Practice User Administrator
A81001,Mo Contact,mo@nhs.net,Main Contact
A81001,Second Contact,second@nhs.net,Main Contact
A81002,Bad Email,bad@,Claims Admin
A81002,No Role,norole@nhs.net,Super User
A89999,Unknown Org,unknown@nhs.net,Claims Admin
A81002,,noname@nhs.net,Claims Admin
U12345,Pcn Admin,pcn@nhs.net,PCN User Admin
"""


def test_users_load_under_the_rules(loaded, tmp_path) -> None:
    path = write(tmp_path, "users.csv", USERS)
    with loaded.transaction() as session:
        report = import_users(session, path, actor="tester")
    assert (report.added, report.unchanged) == (6, 0)
    assert [(e.row, e.message) for e in report.errors] == [
        (
            6,
            "Practice A81001 already has 4 GPP Practice User Administrators, the most allowed; "
            "end one of their roles first",
        ),
        (
            8,
            "Practice A81001 already has a Main Contact (mo@nhs.net); an organisation has only "
            "one, so a new one must replace the old rather than be added",
        ),
        (9, "'bad@' is not a valid email address"),
        (10, "There is no PCSE Online role called 'Super User'"),
        (11, "There is no organisation A89999 in the directory"),
        (12, "the name is missing"),
    ]
    with loaded.transaction() as session:
        assert len(admins(session, "A81001", Service.GPP)) == 4
        assert main_contact(session, "A81001").email == "mo@nhs.net"
        assert [p.email for p in admins(session, "U12345", Service.PCN)] == ["pcn@nhs.net"]
        grant = session.scalars(select(RoleAssignment).order_by(RoleAssignment.id)).first()
        assert (grant.granted_by, grant.grant_reason) == (
            "tester",
            "Imported from users.csv, row 2",
        )
    # Loading the same file again changes nothing and reports the same refusals.
    with loaded.transaction() as session:
        again = import_users(session, path, actor="tester")
    assert (again.added, again.unchanged, again.failed) == (0, 6, 6)


SIGNERS = """org_code,name,email,capacity
A81001,Dr Helen Morris,helen.morris@nhs.net,GP Partner
A81001,Dr Raj Kumar,RAJ.KUMAR@nhs.net,caldicott_guardian
A81001,Mark Lee,mark.lee@nhs.net,company-director
A81001,Someone,someone@nhs.net,Practice Manager
A89999,Dr Who,who@nhs.net,GP Partner
A81002,Dr Nobody,nobody@,GP Partner
"""


def test_signers(loaded, tmp_path) -> None:
    path = write(tmp_path, "signers.csv", SIGNERS)
    with loaded.transaction() as session:
        report = import_signers(session, path, actor="tester")
    assert report.added == 3
    assert [str(e) for e in report.errors] == [
        "row 5: unknown capacity 'Practice Manager' (expected GP Partner, Caldicott Guardian "
        "or Company Director)",
        "row 6: there is no organisation A89999 in the directory",
        "row 7: 'nobody@' is not a valid email address",
    ]
    renamed = SIGNERS.replace("Dr Helen Morris", "Dr Helen Morris-Jones")
    with loaded.transaction() as session:
        again = import_signers(session, write(tmp_path, "s2.csv", renamed), actor="tester")
    assert (again.added, again.updated, again.unchanged) == (0, 1, 2)
    with loaded.transaction() as session:
        signers = signers_for(session, "A81001")
        assert [(s.capacity, s.name, s.email) for s in signers] == [
            ("gp_partner", "Dr Helen Morris-Jones", "helen.morris@nhs.net"),
            ("caldicott_guardian", "Dr Raj Kumar", "raj.kumar@nhs.net"),
            ("company_director", "Mark Lee", "mark.lee@nhs.net"),
        ]


def test_ael_hyphen_and_en_dash(database, tmp_path) -> None:
    text = (
        "icb_code,name,email,ael_role\n"
        "QHM,Claire Watson,claire.watson@nhs.net,GP Payments - General\n"
        "qhm,David Brown,david.brown@nhs.net,GP Payments – General\n"
        "QHM,Claire Watson,claire.watson@nhs.net,GP Payments – General\n"
        "QHM,Fiona Grant,fiona.grant@nhs.net,retirements\n"
        "QHM,Ann Other,ann@nhs.net,Dental Payments\n"
        "A81001,Not An ICB,icb@nhs.net,GP Payments – General\n"
    )
    with database.transaction() as session:
        report = import_ael(session, write(tmp_path, "ael.csv", text), actor="tester")
    assert (report.added, report.unchanged) == (3, 1)
    assert [str(e) for e in report.errors] == [
        "row 6: unknown AEL role 'Dental Payments' (expected GP Payments – General, "
        "Retirements or General Pensions)",
        "row 7: 'A81001' is not a valid ICB code (Q then two letters or digits, like QHM)",
    ]
    with database.transaction() as session:
        assert find_ael_contact(session, "QHM", "claire.watson@nhs.net") is not None
        assert find_ael_contact(session, "QHM", "david.brown@nhs.net") is not None
        assert find_ael_contact(session, "QHM", "fiona.grant@nhs.net") is None
        roles = Counter(session.scalars(select(AelContact.ael_role)))
        assert roles == {"GP Payments – General": 2, "Retirements": 1}


AEL_FULL = (
    "icb_code,name,email,ael_role\n"
    "QHM,Claire Watson,claire.watson@nhs.net,GP Payments – General\n"
    "QHM,David Brown,david.brown@nhs.net,GP Payments – General\n"
    "QXX,Olu Ade,olu.ade@nhs.net,GP Payments – General\n"
)


def test_ael_replace_removes_only_the_named_icbs_missing_contacts(database, tmp_path) -> None:
    with database.transaction() as session:
        import_ael(session, write(tmp_path, "ael.csv", AEL_FULL), actor="tester")
    newer = "".join(AEL_FULL.splitlines(keepends=True)[:2])  # the header and Claire
    with database.transaction() as session:
        kept = import_ael(session, write(tmp_path, "add.csv", newer), actor="tester")
    assert kept.removed == 0  # without --replace the file only adds and updates
    with database.transaction() as session:
        report = import_ael(
            session, write(tmp_path, "ael2.csv", newer), actor="tester", replace=True
        )
    assert (report.unchanged, report.removed) == (1, 1)
    assert "1 removed" in report.summary()
    with database.transaction() as session:
        assert find_ael_contact(session, "QHM", "david.brown@nhs.net") is None
        assert find_ael_contact(session, "QHM", "claire.watson@nhs.net") is not None
        assert find_ael_contact(session, "QXX", "olu.ade@nhs.net") is not None  # not named
        event = session.scalars(
            select(DirectoryEvent).where(DirectoryEvent.action == "ael_contact_removed")
        ).one()
        assert event.person_email == "david.brown@nhs.net" and "no longer lists" in event.reason


def test_replace_removes_nothing_when_a_row_failed(loaded, tmp_path) -> None:
    with loaded.transaction() as session:
        import_signers(session, write(tmp_path, "s.csv", SIGNERS), actor="tester")
    one_left = (
        "org_code,name,email,capacity\n"
        "A81001,Dr Helen Morris,helen.morris@nhs.net,GP Partner\n"
        "A81001,Typo,not-an-address,Caldicott Guardian\n"
    )
    with loaded.transaction() as session:
        report = import_signers(
            session, write(tmp_path, "s2.csv", one_left), actor="tester", replace=True
        )
    assert report.removed == 0 and report.failed == 1
    assert "Nothing was removed, because 1 row(s) failed" in report.summary()
    good = one_left.splitlines()[:2]
    with loaded.transaction() as session:
        report = import_signers(
            session, write(tmp_path, "s3.csv", "\n".join(good) + "\n"), actor="tester", replace=True
        )
    assert report.removed == 2
    with loaded.transaction() as session:
        assert [s.email for s in signers_for(session, "A81001")] == ["helen.morris@nhs.net"]


def test_header_problems_refuse_the_file(database, tmp_path) -> None:
    cases = {
        "empty.csv": ("", "is empty; its first line must be code,name,type,icb_code"),
        "wrong.csv": (
            "org_code,name,email,role\n",
            "has no column code, type, icb_code; its first line must be",
        ),
    }
    for name, (text, message) in cases.items():
        with database.transaction() as session, pytest.raises(ImportFileError) as refused:
            import_organisations(session, write(tmp_path, name, text), actor="tester")
        assert message in str(refused.value)
    with database.transaction() as session, pytest.raises(ImportFileError, match="not exist"):
        import_organisations(session, tmp_path / "missing.csv", actor="tester")


def test_excel_files_bom_windows_1252_blank_lines(database, tmp_path) -> None:
    bom = write(
        tmp_path,
        "bom.csv",
        "\ufeffCode, Name ,Type,ICB_Code\r\nA81001,Dr Ó Súilleabháin"
        " Surgery,gp_practice,QHM\r\n,,,\r\n",
        encoding="utf-8",
    )
    cp = write(
        tmp_path,
        "cp.csv",
        "code,name,type,icb_code\nA81002,Café Surgery,gp_practice,QHM\n",
        encoding="cp1252",
    )
    with database.transaction() as session:
        assert import_organisations(session, bom, actor="t").added == 1
        assert import_organisations(session, cp, actor="t").added == 1
    with database.transaction() as session:
        assert get_org(session, "A81001").name == "Dr Ó Súilleabháin Surgery"
        assert get_org(session, "A81002").name == "Café Surgery"


def test_example_files_load_cleanly(database) -> None:
    with database.transaction() as session:
        reports = [
            import_organisations(session, EXAMPLES / "organisations.csv", actor="t"),
            import_users(session, EXAMPLES / "users.csv", actor="t"),
            import_signers(session, EXAMPLES / "signers.csv", actor="t"),
            import_ael(session, EXAMPLES / "ael.csv", actor="t"),
        ]
        mistakes = import_users(session, EXAMPLES / "users-with-mistakes.csv", actor="t")
    assert all(r.failed == 0 and r.added > 0 for r in reports)
    assert mistakes.failed == 5 and mistakes.added == 3


# --------------------------------------------------------------------------- NHS ODS


def slice_rows() -> list[list[str]]:
    with SLICE.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_ods_slice_loads_gp_practices_with_their_status(database) -> None:
    rows = slice_rows()
    gp = [r for r in rows if r[25] == "4"]
    with database.transaction() as session:
        report = import_ods(session, SLICE, actor="tester")
    assert (report.added, report.skipped, report.failed) == (len(gp), len(rows) - len(gp), 0)
    with database.transaction() as session:
        statuses = Counter(session.scalars(select(Organisation.status)))
        expected = Counter(
            {"A": "active", "C": "closed", "D": "dormant", "P": "proposed"}[r[12]] for r in gp
        )
        assert statuses == expected
        assert statuses["closed"] > 0 and statuses["dormant"] > 0
        org = get_org(session, "A81001")
        assert (org.name, org.type, org.icb_code, org.status, org.prescribing_setting) == (
            "THE DENSHAM SURGERY",
            "gp_practice",
            "Q74",
            "active",
            4,
        )
        assert get_org(session, "A81003").status == "closed"
        non_gp = next(r[0] for r in rows if r[25] != "4")
        assert get_org(session, non_gp) is None
        summary = session.scalars(
            select(DirectoryEvent).where(DirectoryEvent.action == "ods_import")
        ).one()
        assert summary.detail["added"] == len(gp)


def test_ods_include_non_gp(database) -> None:
    rows = slice_rows()
    with database.transaction() as session:
        report = import_ods(session, SLICE, actor="tester", include_non_gp=True)
    assert (report.added, report.skipped, report.failed) == (len(rows), 0, 0)
    with database.transaction() as session:
        org = get_org(session, "ALD200")
        assert org is not None and org.prescribing_setting == 0
        assert {r[0] for r in rows if r[12] == "P"} <= set(
            session.scalars(select(Organisation.code).where(Organisation.status == "proposed"))
        )


def test_ods_rerun_updates_what_changed_and_keeps_closed(database, tmp_path) -> None:
    with database.transaction() as session:
        import_ods(session, SLICE, actor="tester")
    rows = slice_rows()
    # A month later: A81001 renamed, A81002 closed, A81004 left out of the file.
    for row in rows:
        if row[0] == "A81001":
            row[1] = "THE DENSHAM SURGERY AND ANNEXE"
        if row[0] == "A81002":
            row[12], row[11] = "C", "20260101"
    newer = tmp_path / "epraccur.csv"
    with newer.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(r for r in rows if r[0] != "A81004")
    with database.transaction() as session:
        report = import_ods(session, newer, actor="tester")
    gp = sum(1 for r in rows if r[25] == "4")
    assert (report.added, report.updated, report.unchanged) == (0, 2, gp - 3)
    with database.transaction() as session:
        assert get_org(session, "A81001").name == "THE DENSHAM SURGERY AND ANNEXE"
        assert get_org(session, "A81002").status == "closed"
        assert get_org(session, "A81003").status == "closed"
        # Absent from the newer file: kept as it was.
        assert get_org(session, "A81004").status == "active"
        changes = {
            e.organisation_code: e.detail
            for e in session.scalars(
                select(DirectoryEvent).where(DirectoryEvent.action == "organisation_updated")
            )
        }
        assert changes == {
            "A81001": {
                "changed": {"name": ["THE DENSHAM SURGERY", "THE DENSHAM SURGERY AND ANNEXE"]}
            },
            "A81002": {"changed": {"status": ["active", "closed"]}},
        }
    with database.transaction() as session:
        third = import_ods(session, newer, actor="tester")
    assert (third.added, third.updated) == (0, 0)


def test_ods_bad_rows_reported_good_rows_load(database, tmp_path) -> None:
    good = SLICE.read_text(encoding="utf-8").splitlines()[:3]
    bad = [
        '"A8100X","BROKEN CODE","Y63","Q74","","","","","","","","","A","B","","","","","","",'
        '"","0","","","","4",""',
        '"A81999","ODD STATUS","Y63","Q74","","","","","","","","","X","B","","","","","","",'
        '"","0","","","","4",""',
        '"A81998","SHORT ROW","Y63"',
    ]
    path = write(tmp_path, "epraccur.csv", "\n".join(good + bad) + "\n")
    with database.transaction() as session:
        report = import_ods(session, path, actor="tester")
    assert report.added == 3
    assert [str(e) for e in report.errors] == [
        "row 4: 'A8100X' is not a valid GP practice code (a letter then five digits, like A81001)",
        "row 5: unknown status code 'X' (expected A, C, D or P)",
        "row 6: it has 3 fields where epraccur.csv has 27",
    ]


def ods_row(code: str, name: str, icb: str, setting: int, status: str = "A") -> list[str]:
    values = [""] * 27
    values[0], values[1], values[3], values[12], values[25] = code, name, icb, status, str(setting)
    return values


def write_ods(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "epraccur.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL).writerows(rows)
    return path


def test_ods_never_turns_a_pcn_or_an_icb_into_a_practice(loaded, tmp_path) -> None:
    """U12345 fits a practice code's pattern; the directory holds it as a PCN, with a PCN
    role. A cost centre row naming an ICB's code is refused the same way."""
    path = write_ods(
        tmp_path,
        [
            ods_row("U12345", "SOME PRACTICE", "QHM", 4),
            ods_row("QHM", "COST CENTRE", "", 1, status="C"),
            ods_row("A81001", "THE DENSHAM SURGERY", "QHM", 4),
        ],
    )
    with loaded.transaction() as session:
        report = import_ods(session, path, actor="tester", include_non_gp=True)
    assert [str(e) for e in report.errors] == [
        "row 1: U12345 is in the directory as a PCN, not a GP practice; an NHS ODS file does "
        "not change that (edit it with `pcse directory import-orgs`)",
        "row 2: QHM is in the directory as an ICB, not a GP practice; an NHS ODS file does "
        "not change that (edit it with `pcse directory import-orgs`)",
    ]
    assert report.updated == 1
    with loaded.transaction() as session:
        rows = session.execute(select(Organisation.code, Organisation.type))
        kinds = {code: kind for code, kind in rows}
        assert (kinds["U12345"], kinds["QHM"]) == ("pcn", "icb")
        pcn = session.scalars(select(Organisation).where(Organisation.code == "U12345")).one()
        assert pcn.name == "Stockton PCN" and pcn.ods_refreshed_at is None


def test_ods_rows_that_cannot_be_stored_are_row_errors_and_the_rest_load(
    database, tmp_path
) -> None:
    """A commissioner code longer than the directory holds (PostgreSQL would refuse the
    whole bulk load) is the row's error."""
    path = write_ods(
        tmp_path,
        [
            ods_row("A81001", "GOOD SURGERY", "QHM", 4),
            ods_row("Y00001", "WALK IN", "ABCDEFGHIJ", 1),
        ],
    )
    with database.transaction() as session:
        report = import_ods(session, path, actor="tester", include_non_gp=True)
    assert [str(e) for e in report.errors] == [
        "row 2: 'ABCDEFGHIJ' is not an ICB or commissioner code"
    ]
    assert report.added == 1


def test_an_unreadable_csv_cell_stops_the_import_with_its_line(database, tmp_path) -> None:
    huge = ods_row("A81001", "X" * (csv.field_size_limit() + 10), "QHM", 4)
    path = write_ods(tmp_path, [ods_row("A81002", "FINE", "QHM", 4), huge])
    refused = r"cannot be read past line 2: .*Nothing"
    with pytest.raises(ImportFileError, match=refused), database.transaction() as session:
        import_ods(session, path, actor="tester")
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Organisation)) == 0


def test_an_organisation_holding_roles_keeps_its_kind(loaded, tmp_path) -> None:
    """Its roles belong to its kind's services. Without roles, a kind loaded wrongly can
    still be put right."""
    as_practice = "code,name,type,icb_code\nU12345,Stockton PCN,gp_practice,QHM\n"
    as_pcn = "code,name,type,icb_code\nU12345,Stockton PCN,pcn,QHM\n"

    def kind_after(text: str) -> tuple[list[str], str]:
        with loaded.transaction() as session:
            report = import_organisations(session, write(tmp_path, "o.csv", text), actor="t")
            org = get_org(session, "U12345")
            assert org is not None
            return [str(e) for e in report.errors], org.type

    assert kind_after(as_practice) == ([], "gp_practice")  # no roles: put right freely
    assert kind_after(as_pcn) == ([], "pcn")
    with loaded.transaction() as session:
        grant_role(
            session,
            org_code="U12345",
            email="lead@nhs.net",
            name="Pat Lead",
            role="PCN User Admin",
            actor="tester",
            reason="setup",
        )
    refused = "row 2: U12345 holds open roles as a PCN; end them before making it a Practice"
    assert kind_after(as_practice) == ([refused], "pcn")
