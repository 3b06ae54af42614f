"""Tables as people have them (issue 16): column kinds, categorical columns, missing cells, names, impute,
table metrics, scores on one scale, and the schema in the model file."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import isthmus
from isthmus import Autoencoder, artifact, evaluate
from isthmus.cli import main
from isthmus.columns import CATEGORICAL_LOSSES, TableHead, column_weights
from isthmus.config import PRESETS
from isthmus.data import schema as schema_module
from isthmus.data.schema import Column, Schema, infer_schema, read_columns
from isthmus.errors import ConfigError, DataError

PARAMS = {"hidden_layer_sizes": (32,), "verbose": 0, "random_state": 0, "device": "cpu", "batch_size": 32}


def fit(x: object, **params: object) -> Autoencoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(**{**PARAMS, **params}).fit(x)


def mixed(n: int = 400, seed: int = 0, missing: float = 0.0) -> pd.DataFrame:
    """Two numeric columns that move together, a category that follows their sign, a boolean, noise."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "a": t + 0.1 * rng.normal(size=n),
            "b": 3.0 * t + 10.0 + 0.3 * rng.normal(size=n),
            "site": np.where(t > 0.5, "high", np.where(t < -0.5, "low", "mid")),
            "flag": t > 0,
            "noise": rng.normal(size=n),
        }
    )
    if missing:
        holes = rng.random(frame.shape) < missing
        holes[:, 3] = False  # a boolean column cannot hold NaN in pandas; Arrow and object columns can
        frame = frame.mask(holes)
    return frame


@pytest.fixture(scope="module")
def model() -> Autoencoder:
    return fit(mixed(missing=0.05), n_components=2, max_iter=60, learning_rate=3e-3)


# ---------------------------------------------------------------------------------------------- the schema


def test_kinds_are_read_from_the_types() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "f": [0.5, None, 1.5],
            "s": ["x", " y", None],
            "c": pd.Categorical(["u", "v", "u"]),
            "b": [True, False, True],
        }
    )
    kinds = {c.name: (c.kind, c.levels) for c in infer_schema(read_columns(frame)).columns}
    assert kinds == {
        "n": ("numeric", ()),
        "f": ("numeric", ()),
        "s": ("categorical", ("x", "y")),
        "c": ("categorical", ("u", "v")),
        "b": ("categorical", ("False", "True")),
    }
    table = pa.table({"d": pa.array(["p", "q", "p"]).dictionary_encode(), "z": pa.array([True, None, False])})
    assert [c.kind for c in infer_schema(read_columns(table)).columns] == ["categorical", "categorical"]
    objects = np.array([[1.0, "a"], [2.0, "b"]], dtype=object)
    assert [c.kind for c in infer_schema(read_columns(objects)).columns] == ["numeric", "categorical"]


def test_categorical_features_override_numbers_and_name_real_columns() -> None:
    frame = pd.DataFrame({"zip": [10, 20, 10, 30], "v": [1.0, 2.0, 3.0, 4.0]})
    schema = infer_schema(read_columns(frame), ["zip"])
    assert schema.columns[0].levels == ("10", "20", "30") and schema.columns[0].counts == (2, 1, 1)
    with pytest.raises(ConfigError, match=r"'nope'.*'zip', 'v'"):
        infer_schema(read_columns(frame), ["nope"])


def test_a_number_column_with_a_few_cells_of_text_is_refused_not_read_as_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a marker for "no data" in a column of numbers made it a categorical column of one level per number
    rng = np.random.default_rng(0)
    values = rng.normal(size=200).round(3).astype(object)
    values[[7, 50]] = "n/d"
    frame = pd.DataFrame({"x": values, "y": rng.normal(size=200)})
    refusal = r"column 'x' holds numbers but for 2 cell\(s\) of text \('n/d', first in row 7\)"
    with pytest.raises(DataError, match=refusal):
        infer_schema(read_columns(frame))
    assert infer_schema(read_columns(frame), ["x"]).columns[0].kind == "categorical"  # codes, when the caller says so
    codes = pd.DataFrame({"grade": ["1", "2", "3", "other"] * 50})  # a few numbers and a word: levels, as before
    assert infer_schema(read_columns(codes)).columns[0].levels == ("1", "2", "3", "other")
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.safetensors"), "--set", "max_iter=1"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "make those cells empty" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_na_values_reads_the_cells_a_csv_marks_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the original UCI Adult marks missing cells with "?" (after a space), as many CSV files do
    frame = mixed(200)
    text = frame.astype(object)
    text.loc[[3, 10], "a"] = " ?"
    text.loc[5, "site"] = "?"
    path, model, filled = tmp_path / "t.csv", tmp_path / "m.safetensors", tmp_path / "filled.csv"
    text.to_csv(path, index=False)
    assert main(["--na-values", "?", "train", str(path), "-o", str(model), "--set", "max_iter=2"]) == 0
    columns = {c.name: c for c in Autoencoder.load(model).schema_.columns}
    assert columns["a"].kind == "numeric" and "?" not in columns["site"].levels
    assert main(["--na-values", "?", "impute", str(model), str(path), "-o", str(filled)]) == 0
    out = pd.read_csv(filled)
    assert not out.isna().any().any() and "?" not in set(out["site"])
    np.testing.assert_allclose(out["a"].drop([3, 10]), frame["a"].drop([3, 10]), rtol=1e-5)
    capsys.readouterr()
    assert main(["train", str(path), "-o", str(tmp_path / "n.safetensors"), "--set", "max_iter=2"]) == 1  # unmarked
    assert "'a' holds numbers but for 2 cell(s) of text ('?'" in capsys.readouterr().err


def test_encoding_marks_missing_cells_and_decodes_levels_back() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "s": ["x", "y", None]})
    schema = infer_schema(read_columns(frame))
    wide = schema.encode(schema.align(frame))  # (3, 1 + 2)
    np.testing.assert_array_equal(wide[0], [1.0, 1.0, 0.0])
    assert np.isnan(wide[1, 0]) and np.isnan(wide[2, 1:]).all()
    decoded = schema.decode(np.nan_to_num(wide))
    assert list(decoded["s"][:2]) == ["x", "y"]
    assert Schema.from_json(schema.to_json()) == schema


def test_unseen_level_is_a_missing_cell_with_a_warning_and_an_empty_row_is_refused() -> None:
    schema = infer_schema(read_columns(pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]})))
    with pytest.warns(
        UserWarning, match=r"'s' holds level\(s\) not seen in training: 'z' \(1 cell\(s\), first in row 1"
    ):
        wide = schema.encode(schema.align(pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "z"]})))
    assert np.isnan(wide[1, 1:]).all() and not np.isnan(wide[0]).any()
    with pytest.raises(DataError, match="every cell missing: 1"):
        schema.encode(schema.align(pd.DataFrame({"a": [1.0, None], "s": ["x", None]})))


def test_columns_are_matched_by_name(model: Autoencoder) -> None:
    frame = mixed(50, seed=1)
    codes = model.transform(frame)
    np.testing.assert_array_equal(model.transform(frame[frame.columns[::-1]]), codes)
    with pytest.raises(DataError, match=r"lacks the column.*'site'"):
        model.transform(frame.drop(columns="site"))
    with pytest.warns(UserWarning, match="'income'.*ignored"):
        extra = model.transform(frame.assign(income=1))
    np.testing.assert_array_equal(extra, codes)


# ---------------------------------------------------------------------------------------------- the loss


def test_default_weights_give_each_kind_half_and_overrides_win() -> None:
    schema = infer_schema(read_columns(mixed(20)))  # 3 numeric, 2 categorical columns
    weights = column_weights(schema, None)
    kinds = np.array([c.kind for c in schema.columns])
    assert weights[kinds == "numeric"].sum() == pytest.approx(weights[kinds == "categorical"].sum())
    assert weights.sum() == pytest.approx(len(kinds))
    assert column_weights(schema, {"noise": 0.0})[schema.names.index("noise")] == 0.0
    with pytest.raises(ConfigError, match="'nope'"):
        column_weights(schema, {"nope": 1.0})


def test_loss_skips_missing_cells() -> None:
    schema = infer_schema(read_columns(mixed(20)))
    head = TableHead(schema, column_weights(schema, None), lambda o, x, s: (o - x).square(), lambda o: o, 0.0)
    x = torch.from_numpy(schema.encode(schema.align(mixed(20))))
    raw = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    cells = head.cells(raw, x, None)  # (20, 5)
    holed = x.clone()
    holed[3, schema.starts()[2] : schema.starts()[2] + 3] = float("nan")  # row 3's "site" is missing
    holed[5, 0] = float("nan")  # row 5's "a"
    assert torch.isnan(head.cells(raw, holed, None)[3, 2]) and torch.isnan(head.cells(raw, holed, None)[5, 0])
    expected = cells.sum(dim=1).clone()
    expected[3] -= cells[3, 2]
    expected[5] -= cells[5, 0]
    torch.testing.assert_close(head.loss(raw, holed, None), expected)
    # the encoder sees which cells are missing: one indicator per column after the values
    inputs = head.inputs(holed)
    assert inputs.shape == (20, schema.width + 5) and inputs[3, schema.width + 2] == 1 and inputs[5, schema.width] == 1
    assert not torch.isnan(inputs).any()


def _one_categorical(loss: str) -> tuple[Schema, TableHead]:
    """A schema of one categorical column (levels x, y seen 3 and 1 times) measured by ``loss``, and its head."""
    schema = Schema((Column("s", "categorical", "string", ("x", "y"), (3, 1)),), True, True, loss)
    return schema, TableHead(schema, column_weights(schema, None), lambda o, x, s: (o - x).square(), lambda o: o, 0.0)


def test_a_categorical_cell_costs_its_brier_score_or_its_cross_entropy_per_entropy() -> None:
    raw = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)], [math.log(99.0), 0.0]])  # p(y) = .75, .75, .01
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # levels x, y, y
    _, brier = _one_categorical("brier")
    torch.testing.assert_close(brier.cells(raw, x, None)[:, 0], torch.tensor([1.125, 0.125, 2 * 0.99**2]))
    schema, cross = _one_categorical("cross_entropy")
    nats = torch.tensor([math.log(4.0), math.log(4.0 / 3.0), math.log(100.0)])
    torch.testing.assert_close(cross.cells(raw, x, None)[:, 0], nats / schema.columns[0].entropy())
    # a missed rare level: under 2 as a Brier score, more than 4 times 2 as a cross-entropy per entropy
    assert brier.cells(raw, x, None)[2, 0] < 2 < cross.cells(raw, x, None)[2, 0] / 4


def test_the_categorical_loss_is_stored_and_files_without_it_read_as_cross_entropy() -> None:
    schema = infer_schema(read_columns(mixed(20)))
    assert schema.categorical_loss == "brier"  # every schema inferred now
    assert Schema.from_json(schema.to_json()) == schema
    old = json.loads(schema.to_json())
    del old["categorical_loss"]  # a file written before the name was stored
    assert Schema.from_json(json.dumps(old)).categorical_loss == "cross_entropy"
    assert "categorical_loss" not in Schema.from_json(json.dumps(old)).to_json()  # and it is written back as it was
    with pytest.raises(ValueError, match="categorical_loss must be one of cross_entropy, brier"):
        Schema.from_json(json.dumps({**old, "categorical_loss": "hinge"}))
    assert set(CATEGORICAL_LOSSES) == set(schema_module.CATEGORICAL_LOSSES)  # the table and the names agree


# ---------------------------------------------------------------------------------------------- using a model


def test_missing_cells_are_accepted_everywhere(model: Autoencoder) -> None:
    frame = mixed(60, seed=2, missing=0.2)
    assert np.isfinite(model.transform(frame)).all()
    assert np.isfinite(model.score_samples(frame)).all()
    errors = model.reconstruction_error(frame, per_feature=True)
    assert isinstance(errors, pd.DataFrame) and list(errors.columns) == list(frame.columns)
    assert (errors.isna().to_numpy() == frame.isna().to_numpy()).all()  # no error for a missing cell


def test_impute_fills_only_missing_cells_and_beats_the_column_means(model: Autoencoder) -> None:
    truth = mixed(300, seed=3)
    holed = truth.mask(np.random.default_rng(4).random(truth.shape) < 0.2).assign(flag=truth["flag"])
    filled = model.impute(holed)
    assert isinstance(filled, pd.DataFrame) and not filled.isna().any().any()
    seen = holed.notna()
    assert (filled[seen] == holed[seen]).to_numpy()[seen.to_numpy()].all()  # observed cells kept as given
    gone = holed["b"].isna()
    model_error = np.abs(filled.loc[gone, "b"] - truth.loc[gone, "b"]).mean()
    mean_error = np.abs(holed["b"].mean() - truth.loc[gone, "b"]).mean()
    assert model_error < 0.5 * mean_error, (model_error, mean_error)
    gone = holed["site"].isna()
    accuracy = (filled.loc[gone, "site"] == truth.loc[gone, "site"]).mean()
    most_frequent = (truth.loc[gone, "site"] == holed["site"].mode()[0]).mean()
    assert accuracy > most_frequent + 0.2, (accuracy, most_frequent)


def test_the_table_preset_fills_a_mixed_table_better_than_means_and_modes() -> None:
    truth = mixed(600, seed=5)
    holed = truth.mask(np.random.default_rng(6).random(truth.shape) < 0.2).assign(flag=truth["flag"])
    filled = fit(holed, **{**PRESETS["table"], "n_components": 2}).impute(holed)
    gone = holed["site"].isna()
    accuracy = (filled.loc[gone, "site"] == truth.loc[gone, "site"]).mean()
    modal = (holed["site"].mode()[0] == truth.loc[gone, "site"]).mean()
    assert accuracy > modal + 0.2, (accuracy, modal)
    gone = holed["b"].isna()
    model_error = np.abs(filled.loc[gone, "b"] - truth.loc[gone, "b"]).mean()
    assert model_error < 0.5 * np.abs(holed["b"].mean() - truth.loc[gone, "b"]).mean()


def test_outputs_keep_the_kind_of_table_given(model: Autoencoder) -> None:
    frame = mixed(10, seed=5)
    recon = model.reconstruct(frame)
    assert isinstance(recon, pd.DataFrame) and list(recon.columns) == list(frame.columns)
    assert set(recon["site"]) <= {"high", "low", "mid"} and recon["flag"].isin([True, False]).all()
    table = model.reconstruct(pa.Table.from_pandas(frame, preserve_index=False))
    assert isinstance(table, pa.Table) and table.column_names == list(frame.columns)
    objects = model.reconstruct(frame.to_numpy(dtype=object))
    assert objects.shape == (10, 5) and objects.dtype == object
    assert isinstance(model.inverse_transform(model.transform(frame)), pd.DataFrame)


def test_scores_are_sums_of_column_contributions(model: Autoencoder) -> None:
    frame = mixed(40, seed=6, missing=0.1)
    parts = model.score_contributions(frame)
    np.testing.assert_allclose(parts.sum(axis=1, skipna=True), -model.score_samples(frame), rtol=1e-5)
    odd = frame.copy()
    odd.loc[0, "site"] = "high" if odd.loc[0, "a"] < -1 else "low"  # a level against its row's numbers
    odd.loc[0, "a"] = frame["a"].mean() - 6 * frame["a"].std()
    assert model.score_samples(odd)[0] < np.percentile(model.score_samples(frame), 5)


def test_evaluate_reports_each_column_beside_pca_and_no_psnr(model: Autoencoder) -> None:
    result = evaluate(model, mixed(200, seed=7))
    assert result["autoencoder"]["psnr"] is None and result["pca"]["psnr"] is None
    by_name = {c["name"]: c for c in result["columns"]}
    assert by_name["site"]["metric"] == "accuracy" and by_name["b"]["metric"] == "r2"
    assert by_name["b"]["autoencoder"] > 0.8 and by_name["site"]["autoencoder"] > 0.8


# ---------------------------------------------------------------------------------------------- the model file


def test_schema_is_stored_and_used_after_loading(model: Autoencoder, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = isthmus.load(path)
    assert loaded.schema_ == model.schema_ and list(loaded.feature_names_in_) == list(model.feature_names_in_)
    frame = mixed(30, seed=8, missing=0.1)
    np.testing.assert_array_equal(loaded.transform(frame[frame.columns[::-1]]), model.transform(frame))
    with pytest.raises(DataError, match="'site'"):
        loaded.transform(frame.drop(columns="site"))
    metadata, _ = artifact.read_model_file(path)
    assert metadata["format_version"] == "6"  # a categorical column measured by the Brier score
    assert json.loads(metadata["columns"])["categorical_loss"] == "brier"
    assert json.loads(metadata["columns"])["columns"][2] == {
        "name": "site",
        "kind": "categorical",
        "dtype": "string",
        "levels": ["high", "low", "mid"],
        "counts": list(model.schema_.columns[2].counts),
    }


def test_numeric_tables_without_missing_cells_train_as_before(tmp_path: Path) -> None:
    x = mixed(100)[["a", "b", "noise"]].to_numpy(np.float32).copy()
    ae = fit(x, n_components=1, max_iter=3)
    assert ae.net_.head.plain and not ae.schema_.missing_mask
    ae.save(tmp_path / "m.safetensors")
    assert artifact.read_model_file(tmp_path / "m.safetensors")[0]["format_version"] == "1"
    x[0, 1] = np.nan  # given later, a missing cell enters the encoder as the column mean and has no error
    assert np.isfinite(ae.transform(x)).all() and np.isfinite(ae.impute(x)).all()


def test_quantized_bottleneck_is_refused_for_tables() -> None:
    with pytest.raises(ConfigError, match="categorical columns or missing cells"):
        fit(mixed(40), n_components=2, bottleneck="quantized", max_iter=1)


# ---------------------------------------------------------------------------------------------- the command line


def test_cli_trains_imputes_explains_on_a_messy_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = mixed(200, seed=9, missing=0.1)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame[frame.columns[::-1]].to_csv(tmp_path / "rev.csv", index=False)
    model = tmp_path / "m.safetensors"
    sets = ["--set=n_components=2", "--set=max_iter=5", "--set=hidden_layer_sizes=[16]", "--set=verbose=0"]
    assert main(["train", str(tmp_path / "t.csv"), "-o", str(model), *sets]) == 0
    assert main(["encode", str(model), str(tmp_path / "t.csv"), "-o", str(tmp_path / "a.npy")]) == 0
    assert main(["encode", str(model), str(tmp_path / "rev.csv"), "-o", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert main(["impute", str(model), str(tmp_path / "rev.csv"), "-o", str(tmp_path / "f.csv")]) == 0
    filled = pd.read_csv(tmp_path / "f.csv")
    assert list(filled.columns) == list(frame.columns) and not filled.isna().any().any()
    assert set(filled["site"]) <= {"high", "low", "mid"}
    assert main(["score", str(model), str(tmp_path / "t.csv"), "-o", str(tmp_path / "s.csv"), "--explain", "2"]) == 0
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["score", "flag", "explain_1", "explain_2"]
    assert set(scores["explain_1"]) <= set(frame.columns)
    capsys.readouterr()
    assert main(["evaluate", str(model), str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "site" in out
    frame.drop(columns="b").to_csv(tmp_path / "lacks.csv", index=False)
    assert main(["encode", str(model), str(tmp_path / "lacks.csv"), "-o", str(tmp_path / "c.npy")]) == 1
    assert "'b'" in capsys.readouterr().err


def test_the_anomaly_preset_works_unchanged_on_a_mixed_table_with_holes(tmp_path: Path) -> None:
    from isthmus.config import PRESETS

    train = mixed(300, seed=10, missing=0.05)
    ae = fit(train, **{**PRESETS["anomaly"], "max_iter": 15})
    new = mixed(100, seed=11, missing=0.1)
    odd = new.copy()
    odd["b"] = odd["b"] + 8 * train["b"].std()  # every row far off in one column
    normal, shifted = ae.score_samples(new), ae.score_samples(odd)
    seen = new["b"].notna().to_numpy()  # a missing cell cannot be shifted
    assert np.isfinite(normal).all() and (shifted < normal)[seen].mean() > 0.95
    ae.save(tmp_path / "m.safetensors")
    np.testing.assert_allclose(isthmus.load(tmp_path / "m.safetensors").score_samples(new), normal, rtol=1e-6)
