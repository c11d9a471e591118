"""The service starts and answers."""


def test_front_page_and_health_answer_without_a_token(client):
    """The front page and the health check are public."""
    assert client.get("/").status_code == 200
    assert client.get("/health").json == {"status": "ok"}


def test_a_technician_registers_a_patient(tech):
    """A patient registered through the API comes back with a derived risk group."""
    response = tech.post(
        "/api/v1/patients",
        json={
            "study_id": "IF21-NL-900",
            "site": "NL-PMC",
            "sex": "M",
            "diagnosis": "B-ALL",
            "fusion_partner": "MLLT1",
            "diagnosis_date": "2026-01-10",
            "age_at_diagnosis_days": 300,
            "wbc_at_diagnosis": "40",
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["risk_group"] == "MR"
