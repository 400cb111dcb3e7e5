"""Small hardening items: the baseline's ISO dates and clean note, the DEBUG 404's CSP, no
server banner wherever uvicorn is started."""

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from analytics.models import BaselineMeasurement
from tests.asgi import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent.parent
CREATE = reverse("analytics:baseline_create")
MEASURED_ON = timezone.localdate() - timedelta(days=40)


def baseline(user, **overrides) -> dict:
    return {
        "minutes": "12",
        "measured_on": MEASURED_ON.isoformat(),
        "timed_by": str(user.pk),
        "note": "VPN drop",
        **overrides,
    }


@pytest.mark.parametrize(
    "typed", ["01/02/2026", "02/01/2026", "2026/02/01", "1 Feb 2026", "20260201", "2026-2-1x"]
)
def test_the_baseline_date_is_iso_only_and_says_why(client_for, ada, typed):
    response = client_for(ada).post(CREATE, baseline(ada, measured_on=typed))
    assert response.status_code == 400
    html = response.content.decode()
    assert "YYYY-MM-DD" in html
    assert "could be January or February" in html
    assert f'value="{typed}"' in html  # what was typed stays, to be corrected
    assert "VPN drop" in html
    assert not BaselineMeasurement.objects.exists()


def test_an_iso_baseline_date_is_read_as_written(client_for, ada):
    response = client_for(ada).post(CREATE, baseline(ada, measured_on=MEASURED_ON.isoformat()))
    assert response.status_code == 303
    assert BaselineMeasurement.objects.get().measured_on == MEASURED_ON


@pytest.mark.parametrize("character", ["\x07", "\x1b", "\x7f", "\x85", "\x0b"])
def test_the_baseline_note_refuses_control_characters(client_for, ada, character):
    response = client_for(ada).post(CREATE, baseline(ada, note=f"VPN{character}drop"))
    assert response.status_code == 400
    assert "control characters" in response.content.decode()
    assert not BaselineMeasurement.objects.exists()


def test_the_baseline_edit_refuses_them_too(client_for, ada):
    client_for(ada).post(CREATE, baseline(ada))
    timing = BaselineMeasurement.objects.get()
    url = reverse("analytics:baseline_edit", args=[timing.pk])
    response = client_for(ada).post(url, baseline(ada, measured_on="03/04/2026", note="a\x1bb"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "YYYY-MM-DD" in html and "control characters" in html
    timing.refresh_from_db()
    assert (timing.measured_on, timing.note) == (MEASURED_ON, "VPN drop")


# -------------------------------------------------------------------------------- #9


@override_settings(DEBUG=True)
def test_the_debug_404_page_carries_a_csp_without_script(client_for, sam):
    response = client_for(sam).get("/no-such-page/<script>alert(1)</script>")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()  # Django's technical page
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script" not in policy  # no script source at all: default-src 'none' covers it
    assert "style-src 'unsafe-inline'" in policy


@override_settings(DEBUG=True)
def test_the_debug_404_page_has_its_csp_for_anonymous_visitors_too(client, db):
    response = client.get("/accounts/login/nothing-here")
    assert response.status_code == 404
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_the_production_404_page_keeps_the_apps_csp(client_for, sam):
    response = client_for(sam).get("/no-such-page/")
    assert response.status_code == 404
    assert "script-src 'self' 'nonce-" in response["Content-Security-Policy"]


UVICORN_COMMAND = re.compile(r"uvicorn[\"',\s]+resolutionflow\.asgi:application(?P<rest>[^`\n]*)")


@pytest.mark.parametrize("path", ["Makefile", "docs/OPERATIONS.md", "README.md"])
def test_every_documented_uvicorn_command_drops_the_server_header(path):
    text = (ROOT / path).read_text()
    commands = [m.group(0) for m in UVICORN_COMMAND.finditer(text)]
    if path == "Makefile":
        assert commands, "make run starts uvicorn"
        # The Makefile continues the command over several lines.
        rest = text[text.index("uvicorn resolutionflow.asgi:application") :].split("\n\n")[0]
        assert "--no-server-header" in rest
    for command in commands:
        if path != "Makefile":
            assert "--no-server-header" in command, command


def test_the_benches_start_uvicorn_without_the_server_header():
    starters = [
        path for path in sorted((ROOT / "bench").glob("*.py")) if '"uvicorn"' in path.read_text()
    ]
    assert ROOT / "bench" / "harness.py" in starters
    for path in starters:
        assert '"--no-server-header"' in path.read_text(), path.name


def test_uvicorn_started_as_documented_sends_no_server_header(tmp_path):
    """The flag does what the docs say, on the uvicorn the project pins."""
    import httpx2

    port = free_port()
    app = tmp_path / "tiny_app.py"
    app.write_text(
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    command = [sys.executable, "-m", "uvicorn", "tiny_app:app", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--no-server-header", "--log-level", "warning", "--lifespan", "off"],
        cwd=tmp_path,
    )
    try:
        wait_for_port(port, process=process)
        response = httpx2.get(f"http://127.0.0.1:{port}/")
        assert response.text == "ok"
        assert "server" not in response.headers
    finally:
        process.terminate()
        process.wait(timeout=5)
