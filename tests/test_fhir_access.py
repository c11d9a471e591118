"""The FHIR API's rules: bad input as OperationOutcome, who sees what, consent, $everything,
the MIABIS summary and the bulk export."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from consent_helpers import ACTOR, NUMBERING, days_ago
from fhir_helpers import assert_resolvable, validate
from fhir_scenario import biobank, freezer, give, studies  # noqa: F401

from biobank.consent.pseudonym import pseudonym
from biobank.consent.withdrawal import withdraw
from biobank.samples import service as samples


def _outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.json
    assert response.mimetype == "application/fhir+json"
    body = validate(response.json)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in validate(bundle)["entry"]]


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/fhir/Bogus", 400, "unknown resource type"),
        ("/fhir/Bogus/1", 400, "unknown resource type"),
        ("/fhir/Specimen?colour=red", 400, "unknown search parameter 'colour'"),
        ("/fhir/Specimen?subject:missing=true", 400, "modifiers are not supported"),
        ("/fhir/Consent?status=active", 400, "unknown search parameter 'status'"),
        ("/fhir/Specimen?_count=0", 400, "_count must be"),
        ("/fhir/Specimen?_count=501", 400, "_count must be"),
        ("/fhir/Specimen?_count=ten", 400, "_count must be"),
        ("/fhir/Specimen?_lastUpdated=2025-02-30", 400, "not a valid date"),
        ("/fhir/Specimen?_lastUpdated=yesterday", 400, "not a FHIR date"),
        ("/fhir/Specimen?_lastUpdated=ge2025-01-01T10:00", 400, "zone"),
        ("/fhir/Specimen?_lastUpdated=ap2025", 400, "not supported"),
        ("/fhir/Specimen?status=lost", 400, "not a Specimen status"),
        ("/fhir/Specimen?subject=Specimen/sample-1", 400, "not a Patient reference"),
        ("/fhir/Specimen?_cursor=anywhere", 400, "_cursor"),
        ("/fhir/Specimen?type=%01", 400, "control characters"),
        ("/fhir/Specimen?_format=xml", 406, "application/fhir+json"),
        ("/fhir/Specimen/aliquot-999999", 404, "no Specimen/aliquot-999999"),
        ("/fhir/Specimen/IF00000001X", 404, "no Specimen"),
        ("/fhir/Patient/IF21-NOBODY", 404, "no Patient"),
        ("/fhir/Patient/a%20b/$everything", 404, "no Patient"),
        ("/fhir/Consent/IF21-NOBODY.storage", 404, "no Consent"),
        ("/fhir/Organization/elsewhere", 404, "no Organization"),
        ("/fhir/Measure/other/$evaluate-measure", 404, "no Measure"),
        (
            "/fhir/Measure/miabis-collection-summary/$evaluate-measure?periodStart=soon",
            400,
            "periodStart",
        ),
    ],
)
def test_bad_input(manager: Any, url: str, status: int, says: str) -> None:
    """Bad input is a 4xx OperationOutcome that says what was wrong."""
    assert says in _outcome(manager.get(url), status)


def test_errors_of_the_gate_and_routing(client: Any, tech: Any) -> None:
    """No token is a 401, a write a 405: both as OperationOutcome; metadata is public."""
    response = client.get("/fhir/Specimen")
    assert "bearer token" in _outcome(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    _outcome(tech.post("/fhir/Specimen", json={"resourceType": "Specimen"}), 405)
    _outcome(tech.delete("/fhir/Specimen/sample-1"), 405)
    metadata = client.get("/fhir/metadata")
    assert metadata.status_code == 200
    assert validate(metadata.json)["fhirVersion"] == "4.0.1"


def test_capability_statement_lists_exactly_the_routes(app: Any, client: Any) -> None:
    """The CapabilityStatement names every resource type the API routes, and only those;
    the search parameters it lists are the ones the searches accept."""
    from biobank.fhir import search

    body = validate(client.get("/fhir/metadata").json)
    listed = {r["type"]: r for r in body["rest"][0]["resource"]}
    routed = {
        rule.rule.split("/")[2]
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/fhir/") and "<resource_type>" not in rule.rule
    } - {"metadata"}
    assert set(listed) == routed
    for kind, accepted in (
        ("Specimen", search.SPECIMEN),
        ("Consent", search.CONSENT),
        ("Patient", search.COMMON),
    ):
        params = {p["name"] for p in listed[kind]["searchParam"]}
        assert params == accepted - {"_cursor", "_format"}


def test_researcher_sees_what_the_substudy_received(
    app: Any, as_role: Any, manager: Any, biobank: SimpleNamespace
) -> None:  # noqa: F811
    """A DEMO researcher sees the two released tubes, without accession, place or the
    unreleased parent, their patient (by DEMO's pseudonym, never the study_id) and its
    storage and DEMO consents, nothing else."""
    researcher = as_role("researcher", substudies=["DEMO"])
    found = researcher.get("/fhir/Specimen?_count=500").json
    assert _ids(found) == [f"aliquot-{t.id}" for t in biobank.plasma[:2]]
    tube = found["entry"][0]["resource"]
    assert "accessionIdentifier" not in tube and "parent" not in tube
    assert "extension" not in tube["container"][0]
    assert_resolvable(researcher, tube)
    with app.app_context():
        a, b = (pseudonym("DEMO", p.study_id) for p in (biobank.a, biobank.b))
    assert tube["subject"]["reference"] == f"Patient/{a}"
    assert _ids(researcher.get("/fhir/Patient").json) == [a]
    patient = researcher.get(f"/fhir/Patient/{a}").json
    assert patient["identifier"][0]["value"] == a
    assert patient["identifier"][0]["system"].endswith("/sid/pseudonym/DEMO")
    study_id = biobank.a.study_id
    assert study_id not in json.dumps(researcher.get(f"/fhir/Patient/{a}/$everything").json)
    assert "no Patient" in _outcome(researcher.get(f"/fhir/Patient/{study_id}"), 404)
    assert _ids(researcher.get(f"/fhir/Specimen?subject={a}").json) == _ids(found)
    assert "no Patient" in _outcome(researcher.get(f"/fhir/Patient/{b}"), 404)
    assert "no Patient" in _outcome(researcher.get(f"/fhir/Patient/{b}/$everything"), 404)
    _outcome(researcher.get(f"/fhir/Specimen/aliquot-{biobank.plasma[2].id}"), 404)
    _outcome(researcher.get(f"/fhir/Specimen/sample-{biobank.bm.id}"), 404)
    assert _ids(researcher.get(f"/fhir/Specimen?subject={b}").json) == []
    consents = _ids(researcher.get("/fhir/Consent").json)
    assert consents == [f"{a}.storage", f"{a}.substudy-{biobank_substudy(manager, 'DEMO')}"]
    everything = researcher.get(f"/fhir/Patient/{a}/$everything").json
    assert len(_ids(everything)) == 1 + 2 + 2
    other = as_role("researcher", substudies=["MRD-NGS"])
    assert _ids(other.get("/fhir/Specimen").json) == []
    assert _ids(other.get("/fhir/Patient").json) == []


def biobank_substudy(manager: Any, code: str) -> int:
    """The database id of a sub-study (its Consent ids carry it)."""
    from sqlalchemy import select

    from biobank.consent.models import Substudy
    from biobank.db import get_session

    return get_session().scalar(select(Substudy.id).where(Substudy.code == code))


def test_site_scope(as_role: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """A user limited to DE-KIEL sees Kiel's patient and specimens only."""
    kiel = as_role("technician", sites=["DE-KIEL"])
    assert _ids(kiel.get("/fhir/Patient").json) == [biobank.b.study_id]
    assert _ids(kiel.get("/fhir/Specimen").json) == [f"sample-{biobank.b_pb.id}"] + [
        f"aliquot-{t.id}" for t in biobank.b_plasma
    ]
    _outcome(kiel.get(f"/fhir/Specimen/sample-{biobank.bm.id}"), 404)
    _outcome(kiel.get(f"/fhir/Patient/{biobank.a.study_id}"), 404)
    assert _ids(kiel.get(f"/fhir/Consent?patient={biobank.a.study_id}").json) == []


def test_consent_history(
    manager: Any,
    session: Any,
    biobank: SimpleNamespace,  # noqa: F811
    give: Any,
) -> None:  # noqa: F811
    """Storage consent given, withdrawn, given again: active, with permit, deny and permit
    provisions dated as they happened; DEMO withdrawn with it is inactive."""
    a = biobank.a
    withdraw(
        session,
        ACTOR,
        a,
        {
            "scope": "all",
            "date": days_ago(40),
            "requested_by": "mother",
            "reason": "family decision",
        },
    )
    session.commit()
    give(a, "storage", days_ago(10))
    consent = validate(manager.get(f"/fhir/Consent/{a.study_id}.storage").json)
    assert consent["status"] == "active"
    periods = [(p["type"], p["period"]) for p in consent["provision"]["provision"]]
    assert periods == [
        ("permit", {"start": days_ago(150).isoformat(), "end": days_ago(40).isoformat()}),
        ("deny", {"start": days_ago(40).isoformat(), "end": days_ago(10).isoformat()}),
        ("permit", {"start": days_ago(10).isoformat()}),
    ]
    assert consent["scope"]["coding"][0]["code"] == "research"
    data = validate(manager.get(f"/fhir/Consent/{a.study_id}.data").json)
    assert data["status"] == "inactive"
    assert assert_resolvable(manager, consent) == 2  # the patient, the biobank
    listed = _ids(manager.get(f"/fhir/Consent?patient=Patient/{a.study_id}").json)
    assert listed[:2] == [f"{a.study_id}.storage", f"{a.study_id}.data"] and len(listed) == 3


def test_consent_paging(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """Consents page through next links like Specimens."""
    every = _ids(manager.get("/fhir/Consent?_count=500").json)
    seen, url = [], "/fhir/Consent?_count=1"
    while url:
        page = manager.get(url).json
        seen += _ids(page)
        url = next(
            (
                link["url"].removeprefix("http://localhost")
                for link in page["link"]
                if link["relation"] == "next"
            ),
            None,
        )
    assert seen == every and len(every) == 4


def test_everything(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """$everything: the patient, each of their specimens and consents; all references
    resolve."""
    body = manager.get(f"/fhir/Patient/{biobank.a.study_id}/$everything").json
    kinds = [e["resource"]["resourceType"] for e in validate(body)["entry"]]
    assert kinds.count("Patient") == 1 and kinds.count("Specimen") == 3 + 9
    assert kinds.count("Consent") == 3
    patient = body["entry"][0]["resource"]
    assert "name" not in patient and "birthDate" not in patient
    assert patient["gender"] == "female"
    assert assert_resolvable(manager, body) >= 5


def test_miabis_counts_samples_not_tubes(
    manager: Any, session: Any, biobank: SimpleNamespace
) -> None:  # noqa: F811
    """Three plasma tubes and a double-spun one of one marrow sample are one MIABIS Plasma
    sample; the consumed pellet is not counted; another day's plasma is another sample."""

    def strata(report: dict[str, Any], code: str) -> dict[str, int]:
        [stratifier] = [
            s for s in report["group"][0]["stratifier"] if s["code"][0]["coding"][0]["code"] == code
        ]
        return {
            (s["value"].get("coding") or [{"code": s["value"].get("text")}])[0]["code"]: s[
                "population"
            ][0]["count"]
            for s in stratifier["stratum"]
        }

    url = "/fhir/Measure/miabis-collection-summary/$evaluate-measure"
    report = validate(manager.get(url).json)
    # A: Plasma, DNA, Blood, OtherBodyFluid; B: Plasma.
    assert report["group"][0]["population"][0]["count"] == 5
    assert strata(report, "MaterialType") == {
        "Plasma": 2,
        "DNA": 1,
        "Blood": 1,
        "OtherBodyFluid": 1,
    }
    assert strata(report, "Sex") == {"female": 4, "male": 1}
    assert strata(report, "StorageTemperature") == {"-60to-85": 1, "not in a freezer": 4}
    assert report["group"][1]["population"][0]["count"] == 2
    later = dt.datetime.combine(
        biobank.a.diagnosis_date + dt.timedelta(days=33), dt.time(9), dt.UTC
    )
    eoi = samples.register_sample(
        session,
        ACTOR,
        {
            "study_id": biobank.a.study_id,
            "timepoint": "EOI",
            "unscheduled_reason": None,
            "material": "BM",
            "collected_at": later,
            "received_at": later + dt.timedelta(hours=1),
            "volume_ml": Decimal(2),
            "container_code": "PED",
            "precentrifugation_delay_hours": None,
            "precentrifugation_temperature": None,
            "accession_number": None,
            "notes": None,
        },
        NUMBERING,
    )
    samples.split(
        session, ACTOR, eoi, [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.5")}], NUMBERING
    )
    session.commit()
    report = validate(manager.get(url).json)
    assert strata(report, "MaterialType")["Plasma"] == 3
    start = (biobank.a.diagnosis_date + dt.timedelta(days=1)).isoformat()
    narrowed = validate(manager.get(f"{url}?periodStart={start}").json)
    assert narrowed["group"][0]["population"][0]["count"] == 1 + (
        biobank.b.diagnosis_date > biobank.a.diagnosis_date
    )
    group = validate(manager.get("/fhir/Group/collection").json)
    assert group["quantity"] == 2
    assert_resolvable(manager, group)
    for kind in ("biobank", "collection", "juristic-person"):
        assert_resolvable(manager, validate(manager.get(f"/fhir/Organization/{kind}").json))
    validate(manager.get("/fhir/Measure/miabis-collection-summary").json)


def test_export(runner: Any, manager: Any, tmp_path: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """`fhir export DIR`: one NDJSON file per type, every line a valid resource, the same as
    the API gives staff; the manifest counts them."""
    result = runner.invoke(args=["fhir", "export", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    counts = {item["type"]: item["count"] for item in manifest["output"]}
    assert counts == {"Organization": 3, "Group": 1, "Patient": 2, "Specimen": 15, "Consent": 4}
    for kind, count in counts.items():
        lines = (tmp_path / f"{kind}.ndjson").read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            resource = validate(json.loads(line))
            assert resource["resourceType"] == kind
    first = json.loads((tmp_path / "Specimen.ndjson").read_text().splitlines()[-1])
    served = manager.get(f"/fhir/Specimen/{first['id']}").json
    assert first == served
