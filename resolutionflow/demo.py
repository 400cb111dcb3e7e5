"""The demo personas, shared by seed_demo and the tests' fixtures."""

from dataclasses import dataclass

from resolutionflow.models import Role

DEMO_PASSWORD = "demo"  # noqa: S105 - the documented demo password, refused when DEBUG is off


@dataclass(frozen=True)
class Persona:
    username: str
    display_name: str
    role: str
    account_slug: str

    @property
    def email(self) -> str:
        return f"{self.username}@{self.account_slug}.example"


ACCOUNTS = {"acme": "Acme IT", "globex": "Globex"}

PERSONAS = [
    Persona("tess", "Tess Tran", Role.TECHNICIAN, "acme"),
    Persona("sam", "Sam Okafor", Role.ENGINEER, "acme"),
    Persona("sky", "Sky Lindqvist", Role.ENGINEER, "acme"),
    Persona("ada", "Ada Park", Role.ADMIN, "acme"),
    Persona("gil", "Gil Moreau", Role.TECHNICIAN, "globex"),
    Persona("gwen", "Gwen Hale", Role.ENGINEER, "globex"),
]
