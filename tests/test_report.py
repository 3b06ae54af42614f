"""The report: the page refers only to files beside it that exist, every PNG decodes, each figure shows
what it claims (one panel per loss term, one colour per label, PCA axes past two components), and the
figures that cannot apply are listed with their reason instead of failing.

Models are tiny (a few epochs on a few hundred digits); the figures are checked through their matplotlib
objects, which is what the PNG files are drawn from.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

pytest.importorskip("matplotlib")

from conftest import fit
from isthmus.errors import DataError, DependencyError, OutputError
from isthmus.report import FIGURES, INTERPOLATION_STEPS, Inputs, codes, loss_curves, write_report
from test_cli import DATA, fails, invoke, tiny


class _Refs(HTMLParser):
    """Every src and href attribute of a page, and the tags that could reach outside it."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [value for name, value in attrs if name in ("src", "href") and value is not None]


def check_page(folder: Path) -> list[str]:
    """Require a self-contained page whose references exist beside it and decode; return them."""
    page = (folder / "index.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(page)
    assert not parser.tags & {"script", "link", "iframe", "object"}, parser.tags
    assert "://" not in page and "url(" not in page  # nothing fetched from a network
    for ref in parser.refs:
        assert "/" not in ref and "\\" not in ref, ref  # beside the page: opens from any folder
        assert (folder / ref).is_file(), ref
        with Image.open(folder / ref) as image:
            assert image.format == "PNG"
            image.load()  # decodes every pixel
            assert image.width > 50 and image.height > 50
    return parser.refs


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return digits.images[:400, None].astype(np.float32), digits.target[:400]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    invoke("train", DATA, "-o", path, *tiny())
    return path


def test_cli_report_on_labelled_digits(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke("report", model_file, "digits[300:500]", "-o", out)
    refs = check_page(out)
    assert {"loss.png", "reconstructions.png", "codes.png"} <= set(refs)
    assert "samples.png" not in refs and "interpolation.png" not in refs  # not a variational model
    assert "not shown: samples (the model is not variational" in result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "PCA-2" in page and "PSNR" in page  # the metrics table beside PCA
    assert "kNN accuracy" in page  # with labels, the codes' accuracies too
    assert "digits[300:500], 200 samples" in page


def test_cli_report_refuses_to_overwrite_and_checks_labels(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    invoke("report", model_file, "-o", out)  # no data: the loss curves only
    assert check_page(out) == ["loss.png"]
    assert "already exists" in fails(capsys, "report", model_file, "-o", out)
    invoke("report", model_file, "-o", out, "--overwrite")
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(7))
    message = fails(capsys, "report", model_file, "digits[:10]", "-o", out, "--overwrite", "--labels", labels)
    assert "has 7 labels but digits[:10] has 10 rows" in message
    invoke("report", model_file, "digits[:10]", "-o", out, "--overwrite", "--labels", "digits[10:20]")
    assert "accuracies of the codes are not shown" in (out / "index.html").read_text(encoding="utf-8")  # 1 per class
    fails(capsys, "report", model_file, "-o", out, "--overwrite", "--labels", labels, code=2)  # labels need data


def test_missing_matplotlib_names_the_extra(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    message = fails(capsys, "report", model_file, "-o", tmp_path / "r")
    assert "needs matplotlib, which is not installed" in message and "isthmus[report]" in message
    with pytest.raises(DependencyError, match=r"isthmus\[report\]"):
        write_report(fit(np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), n_components=2), tmp_path)


def test_variational_model_gets_samples_and_interpolation(
    labelled: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = labelled
    ae = fit(x[:300], n_components=3, bottleneck="gaussian", early_stopping=True, max_iter=3)
    result = write_report(ae, tmp_path, x[300:], y[300:])
    assert {"samples", "interpolation"} <= set(result.images)
    assert set(check_page(tmp_path)) == {p.name for p in result.images.values()}
    assert set(result.images) | set(result.skipped) == set(FIGURES)
    # loss curves: one panel per named term (loss, kl, reconstruction), each with training and validation
    fig = loss_curves(Inputs(ae, None, None))
    assert not isinstance(fig, str)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["loss", "kl", "reconstruction"]
    assert all(len(ax.get_lines()) == 2 for ax in panels)
    with Image.open(result.images["interpolation"]) as strip:
        assert strip.width > strip.height * (INTERPOLATION_STEPS // 2)  # one row of STEPS images


def test_codes_are_coloured_by_label_and_projected_past_two(labelled: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = labelled
    wide = fit(x, n_components=5)
    fig = codes(Inputs(wide, x, y))
    assert not isinstance(fig, str)
    ax = fig.axes[0]
    assert len(ax.collections) == 10  # one scatter (one colour) per digit
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(d) for d in range(10)]
    assert ax.get_xlabel().startswith("PC 1 of the codes")
    flat = codes(Inputs(fit(x, n_components=2), x, None))
    assert not isinstance(flat, str)
    assert len(flat.axes[0].collections) == 1 and flat.axes[0].get_xlabel() == "code 1"
    one = codes(Inputs(fit(x, n_components=1), x, y))
    assert not isinstance(one, str) and one.axes[0].get_xlabel() == "code"


def test_tabular_and_encoder_only_models_skip_what_does_not_apply(
    tabular: np.ndarray, labelled: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    result = write_report(fit(tabular, n_components=3), tmp_path / "tab", tabular)
    assert "not images" in result.skipped["reconstructions"]
    assert "codes" in result.images
    check_page(tmp_path / "tab")

    x, y = labelled
    ae = fit(x, n_components=2)
    ae.export_encoder(tmp_path / "enc.safetensors")
    from isthmus import load

    encoder = load(tmp_path / "enc.safetensors")
    result = write_report(encoder, tmp_path / "enc", x, y)
    assert "only the encoder" in result.skipped["reconstructions"]
    assert "codes" in result.images
    assert "only the encoder" in (tmp_path / "enc" / "index.html").read_text(encoding="utf-8")
    check_page(tmp_path / "enc")


def test_anomaly_histogram_when_the_model_scores(labelled: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, _ = labelled
    ae = fit(x, n_components=2)
    result = write_report(ae, tmp_path, x)
    if hasattr(ae, "score_samples") and hasattr(ae, "offset_"):
        assert "scores" in result.images
    else:
        assert "no anomaly scores" in result.skipped["scores"]


def test_api_errors_name_the_problem(labelled: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, y = labelled
    ae = fit(x, n_components=2)
    with pytest.raises(DataError, match="3 labels were given for no data"):
        write_report(ae, tmp_path, None, y[:3])
    write_report(ae, tmp_path)
    with pytest.raises(OutputError, match="already exists"):
        write_report(ae, tmp_path, overwrite=False)
    with pytest.raises(DataError, match="X has 12 features, but Autoencoder is expecting 64"):
        write_report(ae, tmp_path, np.zeros((5, 12), np.float32))
