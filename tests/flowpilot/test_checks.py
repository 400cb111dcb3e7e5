"""The knowledge base is checked before anything is served."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from flowpilot import checks
from flowpilot.assistants.offline import load_knowledge

pytestmark = pytest.mark.django_db  # "check" also runs the database checks


def test_the_bundled_knowledge_passes_the_system_check():
    assert checks.knowledge_loads(None) == []
    call_command("check", verbosity=0)


def test_a_broken_knowledge_file_stops_manage_py_check(tmp_path: Path, monkeypatch):
    # A fallback family without any steps or causes: not a usable knowledge base.
    (tmp_path / "triage.toml").write_text('id = "triage"\ntitle = "Triage"\nfallback = true\n')
    monkeypatch.setattr(checks, "load_knowledge", lambda: load_knowledge(tmp_path))

    (error,) = checks.knowledge_loads(None)
    assert error.id == "flowpilot.E001"
    assert "triage.toml" in error.msg
    with pytest.raises(SystemCheckError, match="flowpilot.E001"):
        call_command("check", verbosity=0)


def test_a_broken_error_code_is_named_with_its_file_and_field(tmp_path: Path, monkeypatch):
    import shutil

    from flowpilot.assistants.offline import KNOWLEDGE_DIR

    shutil.copytree(KNOWLEDGE_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "error-codes.toml").write_text(
        '[[codes]]\ncode = "AADSTS50076"\nfamily = "nope"\nmeaning = "MFA required."\n'
    )
    monkeypatch.setattr(checks, "load_knowledge", lambda: load_knowledge(tmp_path))

    (error,) = checks.knowledge_loads(None)
    assert "error-codes.toml: code #1 (AADSTS50076): 'family' names unknown family" in error.msg


def test_a_step_too_long_for_the_shared_step_model_is_named(tmp_path: Path, monkeypatch):
    import shutil

    from flowpilot.assistants.offline import KNOWLEDGE_DIR

    shutil.copytree(KNOWLEDGE_DIR, tmp_path, dirs_exist_ok=True)
    dns = (tmp_path / "dns.toml").read_text()
    (tmp_path / "dns.toml").write_text(
        dns.replace('title = "Flush the DNS client cache"', 'title = "' + "F" * 201 + '"')
    )
    monkeypatch.setattr(checks, "load_knowledge", lambda: load_knowledge(tmp_path))

    (error,) = checks.knowledge_loads(None)
    assert "dns.toml: family 'dns': step #3 (dns.flush): 'title'" in error.msg


@pytest.mark.parametrize(
    "old, new, named",
    [
        # A cause's "why" longer than the shared Cause model (and the stored assessment) allows.
        (
            'why = "A public resolver or the router cannot answer internal zones;',
            'why = "' + "w" * 1001 + " ",
            "dns.toml: family 'dns': cause #1 (dns.wrong-server): 'why'",
        ),
        # A control character in a step title: refused by the shared Step model.
        (
            'title = "Flush the DNS client cache"',
            'title = "Flush the DNS\\u0007 client cache"',
            "dns.toml: family 'dns': step #3 (dns.flush): 'title': contains control characters",
        ),
    ],
    ids=["cause why too long", "control character in a step title"],
)
def test_the_deploy_check_names_the_file_and_field_the_shared_models_refuse(
    tmp_path: Path, monkeypatch, old: str, new: str, named: str
):
    import shutil

    from flowpilot.assistants.offline import KNOWLEDGE_DIR

    shutil.copytree(KNOWLEDGE_DIR, tmp_path, dirs_exist_ok=True)
    dns = (tmp_path / "dns.toml").read_text()
    assert old in dns
    (tmp_path / "dns.toml").write_text(dns.replace(old, new, 1))
    monkeypatch.setattr(checks, "load_knowledge", lambda: load_knowledge(tmp_path))

    (error,) = checks.knowledge_loads(None)
    assert named in error.msg
