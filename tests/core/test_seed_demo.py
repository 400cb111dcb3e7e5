"""seed_demo: the documented personas, idempotent."""

from django.core.management import call_command

from resolutionflow.models import Account, User


def test_seed_demo_creates_the_personas_and_is_idempotent(db, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    counts = (Account.objects.count(), User.objects.count())
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert (Account.objects.count(), User.objects.count()) == counts
    people = {u.username: (u.account.name, u.role, u.display_name) for u in User.objects.all()}
    assert people == {
        "tess": ("Acme IT", "technician", "Tess Tran"),
        "sam": ("Acme IT", "engineer", "Sam Okafor"),
        "sky": ("Acme IT", "engineer", "Sky Lindqvist"),
        "ada": ("Acme IT", "admin", "Ada Park"),
        "gil": ("Globex", "technician", "Gil Moreau"),
        "gwen": ("Globex", "engineer", "Gwen Hale"),
    }
    assert all(u.check_password("demo") for u in User.objects.all())
