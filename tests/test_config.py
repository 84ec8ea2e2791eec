from pathlib import Path

import pytest

from insightos_utils.config import PipelineConfig, load_config, notebook_parameters


def test_checked_in_config_matches_defaults_keys(repo_root: Path) -> None:
    config = load_config(repo_root / "insightos.toml")
    assert set(config.flat()) == set(PipelineConfig().flat())
    assert config.features.feature_window_days == 14


def test_overrides_replace_only_given_keys() -> None:
    config = PipelineConfig().with_overrides(as_of="2026-01-01", horizon_months=None)
    assert config.data.as_of == "2026-01-01"
    assert config.ltv.horizon_months == 12


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(KeyError, match="windw"):
        PipelineConfig().with_overrides(windw=3)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[features]\nfeature_windows_days = 7\n")
    with pytest.raises(KeyError, match="feature_windows_days"):
        load_config(path)


def test_notebook_parameters_keeps_declared_only() -> None:
    params = notebook_parameters(PipelineConfig(), {"as_of", "horizon_months", "nonexistent"})
    assert params == {"as_of": "", "horizon_months": 12}


def test_flat_keys_are_unique_across_sections() -> None:
    from dataclasses import fields

    config = PipelineConfig()
    names = [f.name for s in fields(config) for f in fields(getattr(config, s.name))]
    assert len(names) == len(set(names))
