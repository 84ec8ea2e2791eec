"""Model choice on the holdout: the written rule on constructed comparisons, and CDNOW through
the command, where auto compares BG/NBD and Pareto/NBD and records why it picked one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightos_utils import cli
from insightos_utils.config import LtvConfig
from insightos_utils.ltv.analysis import analyse_ltv
from insightos_utils.ltv.choice import choose, mae_by_frequency
from insightos_utils.ltv.models.bgnbd import BgNbdParams
from insightos_utils.ltv.models.paretonbd import ParetoNbdParams
from insightos_utils.ltv.simulate import simulate_paretonbd, simulate_transactions

from .data import WORLD_GAMMA_GAMMA


def _row(model: str, total: float, mae: float, ll: float) -> dict[str, float | str]:
    return {"model": model, "total_error_pct": total, "mae_by_frequency": mae, "log_likelihood": ll}


@pytest.mark.parametrize(
    ("bg", "pareto", "winner", "why"),
    [
        ((-12.0, 0.2, -100.0), (-5.0, 0.3, -200.0), "paretonbd", "total error"),
        ((1.0, 0.2, -100.0), (-4.0, 0.1, -90.0), "bgnbd", "total error"),
        ((-3.0, 0.2, -100.0), (-4.0, 0.1, -110.0), "paretonbd", "MAE"),
        ((-3.0, 0.100, -100.0), (-4.0, 0.102, -90.0), "paretonbd", "log-likelihood"),
        ((-3.0, 0.100, -90.0), (-4.0, 0.102, -100.0), "bgnbd", "log-likelihood"),
    ],
)
def test_the_written_rule(
    bg: tuple[float, float, float], pareto: tuple[float, float, float], winner: str, why: str
) -> None:
    choice = choose([_row("bgnbd", *bg), _row("paretonbd", *pareto)], "auto")
    assert choice.model == winner
    assert why in choice.reason


def test_mae_by_frequency_is_the_mean_gap_over_groups() -> None:
    table = pd.DataFrame({"predicted_mean": [1.0, 2.0, 4.0], "actual_mean": [1.5, 2.0, 3.0]})
    assert mae_by_frequency(table) == pytest.approx(0.5)


@pytest.mark.parametrize("world", ["bgnbd", "paretonbd"])
def test_auto_records_the_comparison_on_simulated_worlds(world: str) -> None:
    if world == "bgnbd":
        table = simulate_transactions(
            3000, BgNbdParams(0.4, 5.0, 0.6, 2.5), WORLD_GAMMA_GAMMA, seed=3
        )
    else:
        table = simulate_paretonbd(
            3000, ParetoNbdParams(0.6, 8.0, 0.8, 10.0), WORLD_GAMMA_GAMMA, seed=3
        )
    analysis = analyse_ltv(table, "2025-01-31", "2025-06-30", LtvConfig())
    params = analysis.params
    assert params["model"] in ("bgnbd", "paretonbd")
    assert [row["model"] for row in params["models_compared"]] == ["bgnbd", "paretonbd"]
    assert params["model_choice"]["requested"] == "auto"
    assert params["model"] in params["model_choice"]["reason"].lower().replace("/", "")
    chosen = analysis.models.purchases
    assert chosen.name == params["model"]


def test_cdnow_auto_through_the_command(
    cdnow_csv: Path, defaults_toml: Path, tmp_path: Path
) -> None:
    argv = ["ltv", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30"]
    argv += ["--interval-method", "sampling"]  # the model choice is the point, not intervals
    argv += ["--observation-end", "1998-06-30", "--out", str(tmp_path), "--no-progress"]
    assert cli.main([*argv, "--config", str(defaults_toml)]) == 0
    params = json.loads((tmp_path / "ltv_params.json").read_text())
    compared = {row["model"]: row for row in params["models_compared"]}
    assert set(compared) == {"bgnbd", "paretonbd"}
    # both forecast the same holdout; the Pareto/NBD is the paper's
    assert compared["paretonbd"]["log_likelihood"] == pytest.approx(-9595.0, abs=0.1)
    assert compared["bgnbd"]["actual_purchases"] == compared["paretonbd"]["actual_purchases"]
    assert params["model"] == params["model_choice"]["model"]
    assert params["paretonbd"]["r"] == pytest.approx(0.553, rel=0.01)
    customers = pd.read_csv(tmp_path / "customer_ltv.csv")
    assert np.isfinite(customers["ltv"]).all()
    # the LTV is the chosen model's: forced BG/NBD gives other numbers when Pareto/NBD won
    if params["model"] == "paretonbd":
        forced = tmp_path / "bg"
        assert (
            cli.main(
                [
                    *argv[:-3],
                    "--out",
                    str(forced),
                    "--no-progress",
                    "--model",
                    "bgnbd",
                    "--config",
                    str(defaults_toml),
                ]
            )
            == 0
        )
        other = pd.read_csv(forced / "customer_ltv.csv")
        assert not np.allclose(other["ltv"], customers["ltv"])
        assert json.loads((forced / "ltv_params.json").read_text())["model"] == "bgnbd"
