import subprocess
import sys

import pytest

from insightos_utils.cli import build_parser, main
from insightos_utils.errors import InputError


def test_help_lists_every_contract_command() -> None:
    text = build_parser().format_help()
    for command in ("synth", "ingest", "run", "score", "ltv", "serve"):
        assert command in text


def test_module_entry_point_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "insightos_utils", "--version"], capture_output=True, text=True
    )
    assert completed.returncode == 0
    assert "insightos" in completed.stdout


def test_input_error_maps_to_exit_status_2(monkeypatch, capsys) -> None:
    def refuse(*args, **kwargs):
        raise InputError("users.csv: column 'status' is missing")

    monkeypatch.setattr("insightos_utils.ingest.ingest", refuse)
    status = main(["ingest", "--raw", "somewhere", "--out", "elsewhere"])
    assert status == 2
    assert "users.csv: column 'status' is missing" in capsys.readouterr().err


def test_ingest_requires_a_source() -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["ingest", "--out", "x"])
    assert excinfo.value.code == 2
