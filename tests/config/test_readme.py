"""The README's "Try it" commands, pasted verbatim into bash against a live `serve`: the send
answers 202 and the status command, using the id the first block captured, answers 200.

Only the address changes (the README's 127.0.0.1:8000 becomes this test's free port)."""

import json
import re
import subprocess

import pytest

from tests.support.processes import ROOT, start_serve

pytestmark = pytest.mark.timeout(300)

README_ADDRESS = "127.0.0.1:8000"


def readme_section_blocks(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(r"^```(?:sh|bash)\n(.*?)^```", section, re.S | re.M)


def test_the_quick_start_blocks_exist_and_use_the_documented_address():
    blocks = readme_section_blocks("Try it")
    assert len(blocks) >= 2
    assert all(README_ADDRESS in block for block in blocks)
    assert "<" not in "".join(line for b in blocks for line in b.splitlines() if not line.startswith("#"))


def test_pasting_the_readme_quick_start_into_bash_sends_and_reports_status(tmp_path):
    server, base = start_serve(tmp_path / "var", tmp_path / "serve.log")
    try:
        address = base.removeprefix("http://")
        script = "\n".join(block.replace(README_ADDRESS, address) for block in readme_section_blocks("Try it"))
        # Stricter than an interactive shell: any failing command or unset variable fails the test.
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{server.log()[-3000:]}"
        lines = result.stdout.splitlines()
        statuses = [line for line in lines if line.startswith("HTTP status ")]
        assert statuses == ["HTTP status 202", "HTTP status 200"], result.stdout

        sent = json.loads(lines[lines.index("HTTP status 202") - 1])
        assert sent["outcome"] == "queued"
        status = json.loads(lines[lines.index("HTTP status 200") - 1])
        assert status["id"] == sent["id"]
        assert status["user_id"] == "alice" and status["type"] == "order_shipped"
        assert {c["channel"] for c in status["channels"]} == {"email", "push", "inapp"}
        assert status["status"] in {"queued", "sending", "sent"}
    finally:
        server.stop()
