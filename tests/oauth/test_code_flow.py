"""The authorization code flow with PKCE, end to end through the pages."""

from tests.conftest import authorization_url, pkce_pair, query_of


def test_patient_logs_in_and_client_gets_tokens(client, patients, rp_client):
    patient = patients.create()
    verifier, challenge = pkce_pair()
    url = authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge)
    first = client.get(url)
    assert first.status_code == 303 and "/login" in first.headers["Location"]
    done = patients.login(patient, next_url=query_of(first.headers["Location"])["next"])
    assert done.status_code == 303
    back = client.get(done.headers["Location"])
    assert back.status_code == 303
    answer = query_of(back.headers["Location"])
    assert answer["iss"] == "http://127.0.0.1:5000" and "code" in answer
    token = client.post("/token", data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": "https://dsp.example.lu/callback",
        "code_verifier": verifier,
    }, auth=(rp_client.client_id, rp_client.plain_secret))
    assert token.status_code == 200, token.get_data(as_text=True)
    body = token.get_json()
    assert body["token_type"] == "Bearer" and "id_token" in body
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200
    assert info.get_json()["family_name"] == "Schmit"
    assert "matricule" not in info.get_json()
