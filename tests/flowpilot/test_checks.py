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
