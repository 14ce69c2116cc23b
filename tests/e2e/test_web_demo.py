"""`mailbot demo --serve`: after the demo's flow, the overview on its cases until Ctrl-C,
with the address and a demo user's password printed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest

from tests.conftest import _env

pytestmark = pytest.mark.e2e


def test_demo_serves_the_overview_until_ctrl_c() -> None:
    demo = subprocess.Popen([sys.executable, "-m", "mailbot.cli", "demo", "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(None))
    assert demo.stdout is not None
    try:
        lines: list[str] = []
        while not (lines and "Ctrl-C stops it" in lines[-1]):
            line = demo.stdout.readline()
            assert line, "".join(lines[-20:])
            lines.append(line)
        text = "".join(lines[-3:])
        found = re.search(r"The overview: (http://\S+)/ ==", text)
        login = re.search(r"Sign in as '(\w+)' with the password '([^']+)'", text)
        assert found and login, text
        with httpx.Client(base_url=found[1]) as web:
            assert web.get("/sager").status_code == 303  # signed out: refused
            token = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)
            assert token is not None
            signed = web.post("/login", data={"csrf": token[1], "navn": login[1],
                                              "adgangskode": login[2]})
            assert signed.status_code == 303
            cases = web.get("/sager")
            assert cases.status_code == 200 and "-0004" in cases.text
            assert "Chatbot" in cases.text
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) in (0, 130)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
