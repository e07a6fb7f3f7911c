"""`idp letters render`: new letters for pending patients, written to one print-ready PDF."""

import html
import json
import re

import pytest

from idp import activation_letter
from idp.extensions import db

try:
    import pypdf
except ImportError:  # page count from the raw PDF objects then
    pypdf = None


def page_count(data: bytes) -> int:
    if pypdf is not None:
        import io

        return len(pypdf.PdfReader(io.BytesIO(data)).pages)
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))


@pytest.fixture
def pending(patients):
    """Two pending patients, each already holding a letter; one has no postal address."""
    first = patients.create(status="pending", email=None, mobile=None, given_name="Élodie", family_name="Müller").account
    second = patients.create(status="pending", email=None, mobile=None, birth="19600101").account
    first.address = "12, rue de l'Église\nL-1234 Luxembourg"
    old = {account.id: activation_letter.issue(account)[1] for account in (first, second)}
    db.session.commit()
    return first, second, old


def test_render_issues_new_letters_and_writes_one_page_per_patient(runner, pending, tmp_path):
    first, second, old = pending
    output = tmp_path / "letters.pdf"
    result = runner.invoke(args=["letters", "render", first.matricule, second.matricule, "--output", str(output), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["matricule"], r["page"]) for r in rows] == [(first.matricule, 1), (second.matricule, 2)]
    data = output.read_bytes()
    assert data.startswith(b"%PDF") and page_count(data) == 2
    for account, row in zip((first, second), rows):
        assert activation_letter.check(account.matricule, row["activation_code"])[0].id == account.id
        with pytest.raises(activation_letter.ActivationCodeInvalid):
            activation_letter.check(account.matricule, old[account.id])
        assert row["expires_at"].endswith("Z")


def test_render_text_output_lists_the_pages(runner, pending, tmp_path):
    first, _, _ = pending
    output = tmp_path / "one.pdf"
    result = runner.invoke(args=["letters", "render", first.matricule, "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "1 page(s)" in result.output and first.matricule in result.output
    assert page_count(output.read_bytes()) == 1


@pytest.mark.parametrize("bad", ["unknown", "active"])
def test_render_refuses_unknown_or_active_patients_and_issues_nothing(runner, patients, pending, tmp_path, bad):
    first, _, old = pending
    other = "1893120105732" if bad == "unknown" else patients.create(birth="19700202").matricule
    output = tmp_path / "letters.pdf"
    result = runner.invoke(args=["letters", "render", first.matricule, other, "--output", str(output), "--json"])
    assert result.exit_code == 1
    assert ("unknown matricule" if bad == "unknown" else "already active") in result.stderr
    assert not output.exists()
    db.session.rollback()
    assert activation_letter.check(first.matricule, old[first.id])[0].id == first.id


def test_the_letter_lists_the_wizards_steps_in_its_order_and_words(runner, client, pending, tmp_path):
    """Issue 14, item 11: CGU first, then the five steps with the wizard's own names, in its order."""
    first, _, _ = pending
    output = tmp_path / "letter.pdf"
    assert runner.invoke(args=["letters", "render", first.matricule, "--output", str(output)]).exit_code == 0
    text = " ".join(pypdf.PdfReader(output).pages[0].extract_text().split())
    start = client.get("/activation").get_data(as_text=True)
    cgu_button = re.search(r'<button type="submit">([^<]+)</button>', start).group(1)
    client.post("/activation", data={"csrf_token": re.search(r'name="csrf_token"[^>]*value="([^"]+)"', start).group(1), "accept": "y"})
    wizard = html.unescape(client.get("/activation/code").get_data(as_text=True))
    steps = [" ".join(re.sub(r'<span class="visually-hidden">.*?</span>', "", label).split())
             for label in re.findall(r'<span class="step-label">(.*?)</span>\s*</li>', wizard, re.S)]
    assert len(steps) == 5
    wanted = ["J'active mon compte", "Conditions Générales d'Utilisation", cgu_button, *steps]
    positions = [text.find(word) for word in wanted]
    assert -1 not in positions, [word for word, at in zip(wanted, positions) if at == -1]
    assert positions == sorted(positions), "the letter's steps in the wizard's order"
    assert "« Valider »" in text and "« Connectez-vous »" in text
