"""The estimator in the scikit-learn ecosystem: its own estimator checks, Pipeline, GridSearchCV, clone,
feature names, pandas output, and data given as DataFrames, torch tensors and torch Datasets."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from conftest import TINY, fit
from isthmus import Autoencoder
from isthmus.errors import DataError

# The checks fit on 2 to 5 features, so the code is one unit wide: an undercomplete autoencoder needs
# n_components < n_features. Every check applies and passes but one: isthmus matches a table's columns by
# name (a reordered DataFrame is accepted, an extra column dropped with a warning), where that check wants
# scikit-learn's refusal of any change of column names or order.
_COLUMNS_BY_NAME = {
    "check_dataframe_column_names_consistency": "columns are matched by name: reordered columns are accepted"
}


@parametrize_with_checks(
    [Autoencoder(n_components=1, max_iter=2, hidden_layer_sizes=(4,), verbose=0, random_state=0)],
    expected_failed_checks=lambda estimator: _COLUMNS_BY_NAME,
)
def test_sklearn_estimator_checks(estimator: Autoencoder, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_clone_is_unfitted_with_equal_params(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3)
    copy = clone(ae)
    assert copy.get_params() == ae.get_params()
    assert not hasattr(copy, "net_")
    np.testing.assert_array_equal(fit(tabular, n_components=3).transform(tabular), ae.transform(tabular))


def test_feature_names_out_follow_n_components(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=4)
    assert list(ae.get_feature_names_out()) == [f"autoencoder{i}" for i in range(4)]


def test_set_output_pandas_gives_named_frame_with_input_index(tabular: np.ndarray) -> None:
    frame = pd.DataFrame(tabular, columns=[f"f{i}" for i in range(12)], index=np.arange(100, 100 + len(tabular)))
    ae = fit(frame, n_components=3).set_output(transform="pandas")
    out = ae.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["autoencoder0", "autoencoder1", "autoencoder2"]
    assert list(out.index) == list(frame.index)
    np.testing.assert_array_equal(out.to_numpy(), ae.set_output(transform="default").transform(frame))
    # fit_transform goes through the same wrapper
    assert isinstance(clone(ae).set_output(transform="pandas").fit_transform(frame), pd.DataFrame)


def test_dataframe_input_keeps_feature_names_and_checks_them(tabular: np.ndarray) -> None:
    frame = pd.DataFrame(tabular, columns=[f"f{i}" for i in range(12)])
    ae = fit(frame, n_components=3)
    assert list(ae.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(ae.transform(frame), fit(tabular, n_components=3).transform(tabular))
    # columns are matched by name (issue 16): reordered columns give the same codes, a missing one is refused
    np.testing.assert_array_equal(ae.transform(frame[frame.columns[::-1]]), ae.transform(frame))
    with pytest.raises(ValueError, match=r"lacks the column.*'f3'"):
        ae.transform(frame.drop(columns="f3"))
    expected = -Autoencoder.reconstruction_error(fit(tabular, n_components=3), tabular).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scoring a frame must not warn about its own column names
        assert ae.score(frame) == pytest.approx(expected)


def test_pipeline_with_a_classifier_learns_digits(digits: np.ndarray) -> None:
    from sklearn.datasets import load_digits

    x, y = digits.reshape(len(digits), -1), load_digits().target
    pipe = Pipeline([("ae", Autoencoder(**{**TINY, "max_iter": 30, "n_components": 8})), ("clf", LogisticRegression())])
    pipe.fit(x[:1200], y[:1200])
    accuracy = pipe.score(x[1200:], y[1200:])
    assert accuracy > 0.5, accuracy  # ten classes: chance is 0.1
    assert pipe.predict(x[1200:1210]).shape == (10,)
    assert pipe[:-1].get_feature_names_out().tolist() == [f"autoencoder{i}" for i in range(8)]


def test_score_is_negative_mean_reconstruction_error(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3)
    assert ae.score(tabular) == pytest.approx(-float(ae.reconstruction_error(tabular).mean()))
    # higher is better: a model trained longer reconstructs better and scores higher
    assert fit(tabular, n_components=3, max_iter=40).score(tabular) > ae.score(tabular)


def test_grid_search_unsupervised_prefers_the_wider_code(tabular: np.ndarray) -> None:
    params = {**TINY, "max_iter": 40, "learning_rate": 3e-3}
    search = GridSearchCV(Autoencoder(**params), {"n_components": [1, 6]}, cv=2)
    search.fit(tabular)
    # more components reconstruct better, so the score (negative error) picks 6
    assert search.best_params_ == {"n_components": 6}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0]


def test_grid_search_supervised_through_a_pipeline(digits: np.ndarray) -> None:
    from sklearn.datasets import load_digits

    x, y = digits[:600].reshape(600, -1), load_digits().target[:600]
    pipe = Pipeline([("ae", Autoencoder(**{**TINY, "max_iter": 10})), ("clf", LogisticRegression(max_iter=200))])
    search = GridSearchCV(pipe, {"ae__n_components": [1, 8]}, cv=2)
    search.fit(x, y)
    assert search.best_params_ == {"ae__n_components": 8}
    assert search.best_estimator_.named_steps["ae"].n_components == 8


# ---------------------------------------------------------------- torch tensors and Datasets


def test_tensor_input_matches_numpy(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3)
    tensor = torch.from_numpy(tabular).requires_grad_(True)  # a tensor that needs grad is read, not refused
    np.testing.assert_array_equal(ae.transform(tensor), ae.transform(tabular))
    half = torch.from_numpy(tabular).to(torch.bfloat16)  # no NumPy twin: read through float32
    assert ae.transform(half).shape == (len(tabular), 3)
    codes = ae.transform(tabular)
    np.testing.assert_array_equal(ae.inverse_transform(torch.from_numpy(codes)), ae.inverse_transform(codes))


class _Images(Dataset[tuple[torch.Tensor, int]]):
    """A map-style Dataset of (image, label) pairs, as torchvision's are."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = torch.from_numpy(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index % 10


class _Stream(IterableDataset[torch.Tensor]):
    """An iterable Dataset of bare tensors."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = torch.from_numpy(x)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.x)


def test_torch_datasets_fit_and_transform_like_arrays(digits: np.ndarray, tabular: np.ndarray) -> None:
    images = digits[:200]
    from_dataset = fit(_Images(images), n_components=4)
    from_array = fit(images, n_components=4)
    assert from_dataset.input_shape_ == (1, 8, 8)
    np.testing.assert_array_equal(from_dataset.transform(_Images(images)), from_array.transform(images))

    from_tensors = fit(TensorDataset(torch.from_numpy(tabular)), n_components=3)  # items are 1-tuples
    from_stream = fit(_Stream(tabular), n_components=3)
    np.testing.assert_array_equal(from_tensors.transform(tabular), from_stream.transform(_Stream(tabular)))


def test_bad_torch_datasets_are_refused_by_name() -> None:
    with pytest.raises(DataError, match="empty torch Dataset"):
        Autoencoder(verbose=0).fit(TensorDataset(torch.zeros(0, 3)))
    ragged = [torch.zeros(3), torch.zeros(3), torch.zeros(4)]
    with pytest.raises(DataError, match=r"item 0 is \(3,\), item 2 is \(4,\)"):
        Autoencoder(verbose=0).fit(_ListDataset(ragged))
    with pytest.raises(DataError, match="item 0 is a dict"):
        Autoencoder(verbose=0).fit(_ListDataset([{"x": torch.zeros(3)}]))


class _ListDataset(Dataset[object]):
    def __init__(self, items: list[object]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> object:
        return self.items[index]


def test_one_dimensional_input_says_how_to_reshape(tabular: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"1-D array of shape \(12,\).*Reshape your data"):
        Autoencoder(verbose=0).fit(tabular[0])
    ae = fit(tabular, n_components=3)
    with pytest.raises(DataError, match=r"Reshape your data: X.reshape\(1, -1\)"):
        ae.transform(tabular[0])
    with pytest.raises(DataError, match="X has 5 features, but Autoencoder is expecting 12 features"):
        ae.transform(tabular[:, :5])
