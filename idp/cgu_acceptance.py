"""Acceptance of the Conditions Générales d'Utilisation (CGU), recorded with version and time.

The CGU text is versioned (``CGU_VERSION``); its French, German and English texts live in
``idp/data/cgu/<version>.<language>.txt`` and are served as a page and as a PDF.
"""

from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .extensions import db

CGU_DIRECTORY = Path(__file__).parent / "data" / "cgu"
FONT_DIRECTORY = Path("/usr/share/fonts/truetype/dejavu")


class CguAcceptance(db.Model):
    __tablename__ = "cgu_acceptance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(DateTime)
    context: Mapped[str] = mapped_column(String(32))  # "activation", "myguichet"


def current_version() -> str:
    return current_app.config["CGU_VERSION"]


def text(language: str, version: str | None = None) -> str:
    version = version or current_version()
    path = CGU_DIRECTORY / f"{version}.{language}.txt"
    if not path.exists():
        path = CGU_DIRECTORY / f"{version}.fr.txt"
    return path.read_text(encoding="utf-8")


def record(account_id: int, version: str, context: str) -> CguAcceptance:
    acceptance = CguAcceptance(account_id=account_id, version=version, accepted_at=clock.now(), context=context)
    db.session.add(acceptance)
    return acceptance


def latest(account_id: int) -> CguAcceptance | None:
    return db.session.scalar(
        select(CguAcceptance).where(CguAcceptance.account_id == account_id).order_by(CguAcceptance.id.desc()).limit(1)
    )


def pdf(language: str, version: str | None = None) -> bytes:
    """The CGU as a PDF ("Téléchargeables en PDF")."""
    from fpdf import FPDF  # here, not at the top: fpdf and fontTools take half a second to import

    version = version or current_version()
    document = FPDF(format="A4")
    document.set_title(f"CGU eSanté {version}")
    document.add_font("DejaVu", "", str(FONT_DIRECTORY / "DejaVuSans.ttf"))
    document.add_font("DejaVu", "B", str(FONT_DIRECTORY / "DejaVuSans-Bold.ttf"))
    document.add_page()
    first, _, rest = text(language, version).partition("\n")
    document.set_font("DejaVu", "B", 14)
    document.multi_cell(0, 8, first, new_x="LMARGIN", new_y="NEXT")
    document.set_font("DejaVu", "", 10)
    document.multi_cell(0, 5, rest, new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())
