"""A setting that cannot be used is one sentence naming the variable and why, from every
command and the scheduler, never a traceback, and never the value itself (it may be a key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from newsletter.cli import main; main()"]
SCHEDULER = [sys.executable, str(ROOT / "scheduler.py")]

CASES = [
    (
        {"NEWSLETTER_TIMEZONE": "Mars/Olympus"},
        "NEWSLETTER_TIMEZONE: not an IANA time zone (e.g. Europe/Paris)",
    ),
    (
        {"NEWSLETTER_SCHEDULE_TIME": "25:99"},
        "NEWSLETTER_SCHEDULE_TIME: expected a local time like 09:00",
    ),
    (
        {"NEWSLETTER_SEND_RATE_LIMIT": "inf"},
        "NEWSLETTER_SEND_RATE_LIMIT: input should be a finite number",
    ),
    (
        {"SENDGRID_TIMEOUT_SECONDS": "nan"},
        "SENDGRID_TIMEOUT_SECONDS: input should be a finite number",
    ),
    (
        {"NEWSLETTER_SEND_RATE_LIMIT": "-1"},
        "NEWSLETTER_SEND_RATE_LIMIT: input should be greater than or equal to 0",
    ),
    ({"NEWSLETTER_BATCH_SIZE": "abc"}, "NEWSLETTER_BATCH_SIZE: input should be a valid integer"),
    ({"NEWSLETTER_BATCH_SIZE": "9" * 5000}, "NEWSLETTER_BATCH_SIZE: "),  # past int()'s digit limit
    (
        {"SENDGRID_SANDBOX_MODE": "perhaps-SG.secret"},
        "SENDGRID_SANDBOX_MODE: input should be a valid boolean",
    ),
    (
        {"SENDGRID_TIMEOUT_SECONDS": "SG.looks-like-a-key", "NEWSLETTER_BATCH_SIZE": "0x10"},
        "SENDGRID_TIMEOUT_SECONDS: ",
    ),
]


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    full |= {
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
        "DATABASE_URL": f"sqlite:///{cwd / 'n.db'}",
    }
    full |= env
    return subprocess.run(command, env=full, cwd=cwd, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize(("env", "said"), CASES)
def test_every_command_says_which_setting_and_why(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    for args in (["users", "list"], ["issue", "list", "--json"], ["stats"]):
        done = _run([*CLI, *args], env, tmp_path)
        err = done.stderr.decode()
        assert done.returncode == 1, (args, err)
        assert err.startswith("error: bad setting in the environment or .env: "), err
        assert said in err and "Traceback" not in err and done.stdout == b""
        for value in env.values():
            assert value not in err or len(value) < 4, "the value is repeated"


@pytest.mark.parametrize(("env", "said"), CASES[:6])
def test_the_scheduler_says_so_and_stops(tmp_path: Path, env: dict[str, str], said: str) -> None:
    done = _run(SCHEDULER, env, tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2 and said in err and "Traceback" not in err


def test_bytes_that_are_not_utf8_in_a_setting_are_refused_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    env_bytes[b"NEWSLETTER_SECRET_KEY"] = b"test-secret-key-0123456789"
    env_bytes[b"DATABASE_URL"] = f"sqlite:///{tmp_path / 'n.db'}".encode()
    env_bytes[b"NEWSLETTER_BATCH_SIZE"] = b"\xff\xfe"
    done = subprocess.run(
        [*CLI, "users", "list"],
        env=env_bytes,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 1 and "NEWSLETTER_BATCH_SIZE: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("garbage://x", "cannot open the database garbage://x: Can't load plugin"),
        (
            "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/none",
            "cannot open the database postgresql+psycopg://postgres:***@127.0.0.1:1/none:",
        ),
    ],
)
def test_the_scheduler_says_when_it_cannot_open_the_database(
    tmp_path: Path, url: str, said: str
) -> None:
    done = _run([*SCHEDULER, "--once"], {"DATABASE_URL": url}, tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2 and said in err, err
    assert "Traceback" not in err and "s3cret-pw" not in err
