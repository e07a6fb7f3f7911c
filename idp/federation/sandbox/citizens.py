"""Test citizens of the sandbox stand-ins: the demo patients (``idp demo seed``) and one person the
registry does not know, so every branch of the MyGuichet arrival can be tried by hand."""

from dataclasses import dataclass

from ... import matricule


@dataclass(frozen=True)
class Citizen:
    subject: str  # the stand-in's persistent NameID for this person
    given_name: str
    family_name: str
    national_id: str | None = None
    email: str | None = None
    phone: str | None = None


def myguichet_citizens() -> list[Citizen]:
    return [
        Citizen("mg-hector", "Hector", "Doe", matricule.with_check_digits("19840615101"), "hector.doe@example.lu", "+352621000101"),
        Citizen("mg-filat", "Filat", "D.", matricule.with_check_digits("19910903103"), "filat.d@example.lu", "+352621000103"),
        Citizen("mg-unknown", "Inconnu", "Registre", matricule.with_check_digits("19700101999"), "inconnu@example.lu", "+352621000199"),
    ]


def luxtrust_citizens() -> list[Citizen]:
    return [
        Citizen("lt-hector-0001", "Hector", "Doe"),
        Citizen("lt-filat-0002", "Filat", "D."),
    ]
