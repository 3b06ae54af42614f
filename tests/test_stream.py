"""Out-of-core data: chunked sources, streamed epochs, streamed fitting, encoding and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from conftest import TINY
from isthmus import Autoencoder
from isthmus.batches import ChunkSource, Shard, TensorSource
from isthmus.cli import main
from isthmus.data import open_rows, read_data, write_npy_chunks
from isthmus.data.stream import ArrayRows, moments
from isthmus.errors import DataError, OutputError


@pytest.fixture
def npy(tmp_path: Path, tabular: np.ndarray) -> Path:
    path = tmp_path / "rows.npy"
    np.save(path, tabular)
    return path


def test_npy_chunks_cover_the_file_and_read_its_values(npy: Path, tabular: np.ndarray) -> None:
    rows = open_rows(npy, chunk_rows=50)
    assert len(rows) == len(tabular) and rows.sample_shape == (12,)
    assert [b - a for a, b in rows.chunks] == [50, 50, 50, 50, 40]
    np.testing.assert_array_equal(np.concatenate(list(rows.iter_chunks())), tabular)


def test_npy_images_gain_a_channel_and_other_dtypes_become_float32(tmp_path: Path) -> None:
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    np.save(tmp_path / "im.npy", images)
    rows = open_rows(tmp_path / "im.npy", chunk_rows=2)
    assert rows.sample_shape == (1, 4, 3)
    got = np.concatenate(list(rows.iter_chunks()))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, images[:, None].astype(np.float32))


def test_npy_header_is_checked_before_anything_is_read(tmp_path: Path, tabular: np.ndarray) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, tabular)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        open_rows(path)
    np.save(tmp_path / "f.npy", np.asfortranarray(tabular))
    with pytest.raises(DataError, match="Fortran"):
        open_rows(tmp_path / "f.npy")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(DataError, match="dtype"):
        open_rows(tmp_path / "s.npy")
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="streaming reads"):
        open_rows(tmp_path / "x.csv")
    with pytest.raises(DataError, match="plain path"):
        open_rows("digits")


def test_nan_in_a_chunk_is_reported_with_its_rows(tmp_path: Path, tabular: np.ndarray) -> None:
    bad = tabular.copy()
    bad[130, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    rows = open_rows(tmp_path / "nan.npy", chunk_rows=100)
    rows.read_chunk(0)
    with pytest.raises(DataError, match=r"rows 100\.\.199 has NaN .* rows 30"):
        rows.read_chunk(1)


def test_parquet_is_read_one_row_group_at_a_time(tmp_path: Path, tabular: np.ndarray) -> None:
    table = pa.table({f"c{i}": tabular[:, i] for i in range(12)})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=64)
    rows = open_rows(tmp_path / "t.parquet")
    assert [b - a for a, b in rows.chunks] == [64, 64, 64, 48]
    np.testing.assert_array_equal(np.concatenate(list(rows.iter_chunks())), tabular)


def test_image_folder_streams_the_same_pixels_as_reading_it_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    rows = open_rows(tmp_path, chunk_rows=3)
    assert rows.sample_shape == (1, 6, 5) and len(rows.chunks) == 3
    np.testing.assert_array_equal(np.concatenate(list(rows.iter_chunks())), read_data(tmp_path).X)


def test_moments_match_numpy_over_uneven_chunks(tabular: np.ndarray) -> None:
    stats = moments(ArrayRows(tabular * 1000 + 1e4, chunk_rows=37))  # a large offset tests the merge
    x = tabular.astype(np.float64) * 1000 + 1e4
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(stats.minimum, x.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.maximum, x.max(axis=0), rtol=1e-6)
    assert stats.n_rows == len(x)


def _source(n: int, chunk_rows: int, window_rows: int) -> ChunkSource:
    x = np.arange(n, dtype=np.float32)[:, None]
    rows = ArrayRows(x, chunk_rows=chunk_rows)
    return ChunkSource(rows, list(range(len(rows.chunks))), lambda a: a, window_rows=window_rows)


def test_streamed_epoch_visits_every_row_once_in_a_seeded_order() -> None:
    source = _source(1000, chunk_rows=64, window_rows=200)

    def epoch(gen: torch.Generator) -> list[torch.Tensor]:
        return list(source.shuffled(gen, 48, Shard()))

    gen = torch.Generator().manual_seed(3)
    first, second = epoch(gen), epoch(gen)
    again = epoch(torch.Generator().manual_seed(3))
    for batches in (first, second):
        values = torch.cat(batches)[:, 0]
        assert sorted(values.long().tolist()) == list(range(1000))
        assert [len(b) for b in batches] == [48] * 20 + [40]  # full batches across window boundaries
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # the seed decides
    assert not torch.equal(torch.cat(first), torch.cat(second))  # each epoch reshuffles
    # rows mix across chunks: a batch holds rows of several chunks
    assert len({int(v) // 64 for v in first[0][:, 0].tolist()}) > 1


@pytest.mark.parametrize("source", [_source(203, 16, 64), TensorSource(torch.arange(203.0)[:, None])])
def test_ranks_split_each_global_batch_into_contiguous_parts(source: ChunkSource | TensorSource) -> None:
    whole = list(source.shuffled(torch.Generator().manual_seed(1), 20, Shard()))
    parts = [list(source.shuffled(torch.Generator().manual_seed(1), 20, Shard(r, 3))) for r in range(3)]
    assert all(len(p) == len(whole) for p in parts)  # every rank steps alike
    for i, batch in enumerate(whole):
        assert torch.equal(torch.cat([p[i] for p in parts]), batch)


def test_fit_on_a_stream_learns_like_fit_in_memory(npy: Path, tabular: np.ndarray) -> None:
    params = {**TINY, "n_components": 3, "max_iter": 30}
    streamed = Autoencoder(**params).fit(open_rows(npy, chunk_rows=40))
    in_memory = Autoencoder(**params).fit(tabular)
    np.testing.assert_allclose(streamed.scaler_.offset, in_memory.scaler_.offset, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(streamed.scaler_.scale, in_memory.scaler_.scale, rtol=1e-4)
    err_streamed = streamed.reconstruction_error(tabular).mean()
    err_memory = in_memory.reconstruction_error(tabular).mean()
    baseline = ((tabular - tabular.mean(0)) ** 2).sum(1).mean()
    assert err_streamed < 0.5 * baseline
    assert err_streamed < 2.0 * err_memory
    np.testing.assert_allclose(streamed.transform(open_rows(npy, chunk_rows=7)), streamed.transform(tabular), atol=1e-5)


def test_streamed_fit_with_early_stopping_holds_out_rows_and_resumes(npy: Path, tmp_path: Path) -> None:
    params = {**TINY, "n_components": 3, "max_iter": 4, "early_stopping": True, "n_iter_no_change": 50}
    straight = Autoencoder(**params).fit(open_rows(npy, chunk_rows=24))
    assert all("val_loss" in h for h in straight.history_)

    class _Stop:
        def __call__(self, epoch: int, record: dict[str, float]) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    ckpt = tmp_path / "s.ckpt"
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params).fit(open_rows(npy, chunk_rows=24), checkpoint=ckpt, callbacks=[_Stop()])
    resumed = Autoencoder(**params).fit(open_rows(npy, chunk_rows=24), resume=ckpt)
    for name, value in straight.net_.state_dict().items():
        assert torch.equal(value, resumed.net_.state_dict()[name]), name
    assert 0.05 < len(_val_rows(straight, npy)) / 240 < 0.15
    with pytest.raises(DataError, match="validation"):
        Autoencoder(**{**params, "validation_fraction": 0.001}).fit(open_rows(npy))


def _val_rows(ae: Autoencoder, npy: Path) -> list[int]:
    """Rows the streamed split holds out for validation (recomputed as the estimator draws them)."""
    rows = open_rows(npy, chunk_rows=24)
    seed = ae._seed(None) if ae.random_state is None else _fit_seed(ae)
    held = [np.flatnonzero(np.random.default_rng([seed, a]).random(b - a) < 0.1) + a for a, b in rows.chunks]
    return np.concatenate(held).tolist()


def _fit_seed(ae: Autoencoder) -> int:
    return int(np.random.RandomState(ae.random_state).randint(2**31 - 2))


def test_write_npy_chunks_writes_all_rows_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.npy"
    parts = [np.ones((3, 2), np.float32), 2 * np.ones((4, 2), np.float32)]
    assert write_npy_chunks(out, iter(parts), 7) == (7, 2)
    np.testing.assert_array_equal(np.load(out), np.concatenate(parts))
    with pytest.raises(DataError, match="7 rows arrived where 8"):
        write_npy_chunks(out, iter(parts), 8)
    np.testing.assert_array_equal(np.load(out), np.concatenate(parts))  # the good file is untouched
    with pytest.raises(OutputError, match=r"\.npy"):
        write_npy_chunks(tmp_path / "out.csv", iter(parts), 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]  # no temporary files left


def test_cli_trains_and_encodes_streamed(
    npy: Path, tmp_path: Path, tabular: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    sets = ["--set", "n_components=3", "--set", "max_iter=3", "--set", "verbose=0", "--set", "random_state=0"]
    assert main(["train", str(npy), "-o", str(model), "--stream", *sets]) == 0
    assert "trained 3 epochs on 240 samples of rows.npy" in capsys.readouterr().out
    early = ["--set", "early_stopping=true"]
    assert main(["train", str(npy), "-o", str(model), "--stream", "--overwrite", *sets, *early]) == 0
    assert main(["encode", str(model), str(npy), "-o", str(tmp_path / "a.npy"), "--stream"]) == 0
    assert main(["encode", str(model), str(npy), "-o", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), atol=1e-6)
    assert main(["reconstruct", str(model), str(npy), "-o", str(tmp_path / "r.npy"), "--stream"]) == 0
    assert np.load(tmp_path / "r.npy").shape == tabular.shape
    capsys.readouterr()
    assert main(["encode", str(model), str(npy), "-o", str(tmp_path / "c.csv"), "--stream"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and ".npy" in err and len(err.strip().splitlines()) == 1


def test_a_parquet_row_group_too_big_for_memory_is_refused_up_front(
    tmp_path: Path, tabular: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq.write_table(pa.table({f"c{i}": tabular[:, i] for i in range(12)}), tmp_path / "t.parquet")
    monkeypatch.setattr("isthmus.data.limits.memory_limit", lambda: 4096)
    with pytest.raises(DataError, match=r"row group of 240 rows x 12 columns.*row_group_size"):
        open_rows(tmp_path / "t.parquet")
