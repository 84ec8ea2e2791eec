import json
import tomllib
from pathlib import Path

import pytest

from insightos_utils.config import (
    DEFAULTS,
    KEY_SECTIONS,
    SECTIONS,
    PipelineConfig,
    load_config,
    notebook_parameters,
)
from insightos_utils.errors import InputError

NOTEBOOK_ONLY_PARAMETERS = {
    "run_dir",
    "previous_run_dir",
    "previous_scores_dir",
}  # per-run folders: not settings


def test_checked_in_config_holds_every_key_with_its_default(repo_root: Path) -> None:
    document = tomllib.loads((repo_root / "insightos.toml").read_text())
    assert set(document) == set(SECTIONS)
    written = {key: value for section in document.values() for key, value in section.items()}
    assert set(written) == set(DEFAULTS)
    defaults = PipelineConfig().flat()
    assert written == defaults, {
        k: (written[k], defaults[k]) for k in written if written[k] != defaults[k]
    }
    assert load_config(repo_root / "insightos.toml") == PipelineConfig()


def _parameters_cell(path: Path) -> dict[str, object]:
    notebook = json.loads(path.read_text())
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    namespace: dict[str, object] = {}
    exec("".join(cell["source"]), {}, namespace)  # plain values only (STYLE: a notebook page)
    return namespace


@pytest.mark.parametrize(
    "notebook",
    sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb")),
    ids=lambda p: p.stem,
)
def test_notebook_parameters_are_configuration_keys_with_their_defaults(notebook: Path) -> None:
    declared = _parameters_cell(notebook)
    unknown = set(declared) - set(DEFAULTS) - NOTEBOOK_ONLY_PARAMETERS
    assert not unknown, f"{notebook.name} declares parameters that are not settings: {unknown}"
    flat = PipelineConfig().flat()
    differing = {k: (v, flat[k]) for k, v in declared.items() if k in flat and v != flat[k]}
    assert not differing, f"{notebook.name}: defaults differ from config: {differing}"


def test_overrides_replace_only_given_keys() -> None:
    config = PipelineConfig().with_overrides(as_of="2026-01-01", horizon_months=None)
    assert config.data.as_of == "2026-01-01"
    assert config.ltv.horizon_months == 12


def test_unknown_override_is_an_input_error() -> None:
    with pytest.raises(InputError, match="windw"):
        PipelineConfig().with_overrides(windw=3)


def test_unknown_key_in_file_names_file_section_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[features]\nfeature_windows_days = 7\n")
    with pytest.raises(InputError, match=r"c\.toml.*'feature_windows_days'.*\[features\]"):
        load_config(path)


def test_unknown_section_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[featurez]\nfeature_window_days = 7\n")
    with pytest.raises(InputError, match=r"unknown section \[featurez\]"):
        load_config(path)


def test_toml_syntax_error_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[features\nfeature_window_days = 7\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        (
            "features",
            'feature_window_days = "14"',
            r"\[features\] feature_window_days: expected a whole number, got the text '14'",
        ),
        (
            "ltv",
            'bootstrap_samples = "lots"',
            r"\[ltv\] bootstrap_samples: expected a whole number",
        ),
        ("features", "feature_window_days = 2.5", "expected a whole number"),
        ("features", "feature_window_days = 0", "expected a whole number >= 1"),
        ("scoring", "block_on_leakage = 1", "expected true or false"),
        ("scoring", "holdout_fraction = 1.0", "< 1"),
        ("ltv", 'time_unit = "Y"', "expected one of 'D', 'W', 'M'"),
        ("ltv", "gross_margin = 0", "> 0"),
        ("data", 'as_of = "yesterday"', "ISO 8601"),
        ("run", 'umask = "999"', "octal"),
        ("product", 'funnel_steps = "signup"', "a list of text values"),
    ],
)
def test_wrong_types_and_values_fail_at_load(
    tmp_path: Path, section: str, line: str, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[{section}]\n{line}\n")
    with pytest.raises(InputError, match=message):
        load_config(path)


def test_whole_float_for_an_int_and_int_for_a_float_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[features]\nfeature_window_days = 7.0\n[ltv]\ngross_margin = 1\n")
    config = load_config(path)
    assert config.features.feature_window_days == 7
    assert isinstance(config.features.feature_window_days, int)
    assert config.ltv.gross_margin == 1.0 and isinstance(config.ltv.gross_margin, float)


def test_overrides_are_checked_like_the_file() -> None:
    with pytest.raises(InputError, match="command line: \\[ltv\\] horizon_months"):
        PipelineConfig().with_overrides(source="command line", horizon_months=0)


def test_from_flat_takes_known_keys_of_a_namespace_and_checks_them() -> None:
    namespace = {"feature_window_days": 7, "run_dir": "x", "pd": object(), "key_events": ["a"]}
    config = PipelineConfig.from_flat(namespace)
    assert config.features.feature_window_days == 7
    assert config.features.key_events == ("a",)
    with pytest.raises(InputError, match="feature_window_days"):
        PipelineConfig.from_flat({"feature_window_days": "7"})


def test_notebook_parameters_keeps_declared_only() -> None:
    params = notebook_parameters(PipelineConfig(), {"as_of", "horizon_months", "nonexistent"})
    assert params == {"as_of": "", "horizon_months": 12}


def test_every_key_belongs_to_exactly_one_section() -> None:
    from dataclasses import fields

    names = [f.name for section in SECTIONS.values() for f in fields(section)]
    assert len(names) == len(set(names)) == len(KEY_SECTIONS)
