"""The variants: contract tests over every table entry, then each variant doing what it claims."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

from conftest import fit
from isthmus import Autoencoder, load
from isthmus.bottlenecks import BOTTLENECKS, Bottleneck, Gaussian, kl_weight
from isthmus.config import ModelConfig, choices, document_choices, split_params
from isthmus.corruptions import CORRUPTIONS
from isthmus.errors import ConfigError
from isthmus.metrics import reconstruction_metrics
from isthmus.model import RECONSTRUCTION, build_net
from isthmus.penalties import (
    PENALTIES,
    Param,
    Penalty,
    PenaltyContext,
    contractive,
    jacobian_norm_sq,
    penalty_params,
    top_k,
    tsne_affinities,
)


@pytest.fixture(scope="module")
def digits_flat() -> np.ndarray:
    """(1797, 64) float32 digits with pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32)


# ---------------------------------------------------------------------------------------- contracts

#: one entry of one table, with the settings it needs on 12-column data
ENTRIES = [
    *(("penalty", name) for name in PENALTIES),
    *(("corruption", name) for name in CORRUPTIONS),
    *(("bottleneck", name) for name in BOTTLENECKS),
    *(("loss", name) for name in RECONSTRUCTION),
]
CONTRACT = {"n_components": 3, "sparsity_k": 2, "scaling": "minmax", "max_iter": 2}


@pytest.mark.parametrize(("table", "name"), ENTRIES, ids=[f"{t}={n}" for t, n in ENTRIES])
def test_table_entry_contract(tabular: np.ndarray, tmp_path: Path, table: str, name: str) -> None:
    ae = fit(tabular, **CONTRACT, **{table: name})
    x = tabular[:16]

    # finite losses, every named term logged every epoch, "loss" the sum of the other terms
    net = ae.net_
    net.train()
    batch = torch.from_numpy(ae.scaler_.transform(x))
    terms = net.loss(batch, generator=torch.Generator().manual_seed(0), epoch=1)
    assert all(torch.isfinite(v) for v in terms.values())
    parts = [v for k, v in terms.items() if k != "loss"]
    assert terms["loss"].item() == pytest.approx(torch.stack(parts).sum().item(), rel=1e-5)
    for record in ae.history_:
        assert {k for k in record if k.startswith("train_")} == {f"train_{k}" for k in terms}
        assert all(math.isfinite(v) for v in record.values())
    if PENALTIES[ae.penalty].term is not None:
        assert "penalty" in terms
    if ae.bottleneck == "gaussian":
        assert "kl" in terms

    # gradients reach every parameter
    net.zero_grad()
    terms["loss"].backward()
    for pname, param in net.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, pname
    net.eval()

    # deterministic transform, and the same model after a save/load round trip
    z = ae.transform(x)
    assert np.array_equal(z, ae.transform(x))
    ae.save(tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors")
    assert back.get_params() == ae.get_params()
    assert np.array_equal(back.transform(x), z)
    assert np.array_equal(back.reconstruct(x), ae.reconstruct(x))


def test_incompatible_entries_are_refused(tabular: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"penalty='topk'.*bottleneck='gaussian'"):
        fit(tabular, bottleneck="gaussian", penalty="topk", n_components=3, sparsity_k=2)
    with pytest.raises(ConfigError, match=r"binarize=True.*'mse'"):
        fit(tabular, binarize=True, loss="mse")


# ---------------------------------------------------------------------------------------- regularized


def test_l1_and_weight_decay_shrink_what_they_penalize(digits_flat: np.ndarray) -> None:
    x = digits_flat[:400]
    params = {"n_components": 8, "max_iter": 10, "scaling": "none"}
    plain = fit(x, **params)
    l1 = fit(x, **params, penalty="l1", penalty_weight=1.0)
    assert np.abs(l1.transform(x)).sum(axis=1).mean() < 0.5 * np.abs(plain.transform(x)).sum(axis=1).mean()
    decayed = fit(x, **params, weight_decay=0.1)

    def weight_norm(ae: Autoencoder) -> float:
        return sum(float(p.detach().square().sum()) for p in ae.net_.parameters())

    assert weight_norm(decayed) < weight_norm(plain)


# ---------------------------------------------------------------------------------------- denoising


@pytest.mark.parametrize(("corruption", "level"), [("gaussian", 0.4), ("masking", 0.3)])
def test_denoiser_beats_noisy_input_and_plain_autoencoder(
    digits_flat: np.ndarray, corruption: str, level: float
) -> None:
    train, test = digits_flat[:1500], digits_flat[1500:]
    params = {
        "n_components": 16,
        "hidden_layer_sizes": (64,),
        "scaling": "none",  # so the test's noise is in the same units as the training noise
        "max_iter": 25,
        "batch_size": 64,
        "learning_rate": 3e-3,
    }
    denoiser = fit(train, **params, corruption=corruption, noise_level=level)
    plain = fit(train, **params)
    noisy = CORRUPTIONS[corruption](torch.from_numpy(test), level, torch.Generator().manual_seed(1)).numpy()

    def psnr(x_hat: np.ndarray) -> float:
        return reconstruction_metrics(test, x_hat, 1.0)["psnr"]

    assert psnr(denoiser.denoise(noisy)) > psnr(noisy) + 3.0
    assert psnr(denoiser.denoise(noisy)) > psnr(plain.reconstruct(noisy)) + 0.5


def test_corruption_only_in_training_and_target_is_clean(tabular: np.ndarray) -> None:
    config = ModelConfig(n_components=3, hidden_layer_sizes=(8,), corruption="gaussian", noise_level=0.5, loss="mse")
    net = build_net(config, (12,), seed=0)
    x = torch.from_numpy(tabular[:32] / 50)
    net.train()
    terms = net.loss(x, generator=torch.Generator().manual_seed(3))
    noisy = CORRUPTIONS["gaussian"](x, 0.5, torch.Generator().manual_seed(3))
    expected = (net.decoder(net.encoder(noisy)) - x).square().sum(1).mean()  # noisy input, clean target
    assert terms["reconstruction"].item() == pytest.approx(expected.item(), rel=1e-6)
    net.eval()
    assert net.loss(x)["reconstruction"].item() == pytest.approx(net.reconstruction_loss(x).mean().item(), rel=1e-6)


def test_corruptions_keep_shape_and_their_promise() -> None:
    x = torch.rand(200, 50)
    gen = torch.Generator().manual_seed(0)
    masked = CORRUPTIONS["masking"](x, 0.3, gen)
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    clipped = CORRUPTIONS["gaussian_clipped"](x, 1.0, gen)
    assert clipped.min() >= x.min() and clipped.max() <= x.max()
    salted = CORRUPTIONS["salt_pepper"](x, 0.2, gen)
    assert ((salted == x.min()) | (salted == x.max())).float().mean().item() == pytest.approx(0.2, abs=0.02)
    for corrupt in CORRUPTIONS.values():
        assert corrupt(x, 0.1, gen).shape == x.shape


# ---------------------------------------------------------------------------------------- sparse


def test_kl_sparsity_reaches_the_target_rate(digits_flat: np.ndarray) -> None:
    x = digits_flat[:500]
    ae = fit(
        x,
        n_components=80,  # overcomplete: 80 units for 64 pixels
        penalty="kl_sparsity",
        sparsity_target=0.1,
        penalty_weight=3.0,
        max_iter=25,
        batch_size=50,
        learning_rate=3e-3,
    )
    rates = ae.transform(x).mean(axis=0)  # (n_components,) mean activation of each unit
    assert abs(rates.mean() - 0.1) <= 0.02
    assert np.abs(rates - 0.1).max() <= 0.05


def test_topk_leaves_exactly_k_units_active(digits_flat: np.ndarray) -> None:
    x = digits_flat[:300]
    ae = fit(x, n_components=100, penalty="topk", sparsity_k=5, max_iter=3)
    z = ae.transform(np.concatenate([x, np.zeros((3, 64), np.float32)]))  # constant rows too
    assert ((z != 0).sum(axis=1) == 5).all()
    assert ae.reconstruct(x).shape == x.shape


def test_topk_counts_ties_and_zeros_exactly() -> None:
    config = ModelConfig(n_components=6, penalty="topk", sparsity_k=3)
    code = torch.tensor([[0.0] * 6, [1.0] * 6, [2.0, 2.0, 2.0, 2.0, -1.0, 0.0]])
    out = top_k(code, penalty_params(config))
    assert ((out != 0).sum(dim=1) == 3).all()


# ---------------------------------------------------------------------------------------- contractive


def test_contractive_closed_form_matches_autograd() -> None:
    config = ModelConfig(n_components=5, hidden_layer_sizes=(), penalty="contractive", loss="mse")
    net = build_net(config, (12,), seed=0)
    x = torch.randn(7, 12, generator=torch.Generator().manual_seed(0))
    ctx = PenaltyContext(x, net.encode(x), net.encode, config, penalty_params(config), affine=net._affine())
    assert ctx.affine is not None
    closed = contractive(ctx)
    exact = jacobian_norm_sq(net.encode, x).mean()
    assert closed.item() == pytest.approx(exact.item(), rel=1e-5)
    deep = build_net(dataclasses.replace(config, hidden_layer_sizes=(8,)), (12,), seed=0)
    assert deep._affine() is None


@pytest.mark.parametrize("hidden", [(), (32,)], ids=["one-layer-closed-form", "deep-autograd"])
def test_contractive_lowers_the_jacobian_at_similar_error(digits_flat: np.ndarray, hidden: tuple[int, ...]) -> None:
    x = digits_flat[:600]
    params = {"n_components": 16, "hidden_layer_sizes": hidden, "scaling": "none", "max_iter": 15}
    params |= {"batch_size": 50, "learning_rate": 3e-3, "penalty": "contractive"}
    free = fit(x, **params, penalty_weight=0.0)  # the same sigmoid code, unregularized
    contracted = fit(x, **params, penalty_weight=0.1)

    def jacobian(ae: Autoencoder) -> float:
        return jacobian_norm_sq(ae.net_.encode, torch.from_numpy(x), create_graph=False).mean().item()

    error_free, error_contracted = free.reconstruction_error(x).mean(), contracted.reconstruction_error(x).mean()
    assert error_contracted <= 1.1 * error_free
    assert jacobian(contracted) < 0.7 * jacobian(free)


# ---------------------------------------------------------------------------------------- t-SNE


def test_tsne_affinities_are_a_joint_distribution_over_near_rows() -> None:
    x = torch.randn(200, 10, generator=torch.Generator().manual_seed(0))
    entropies = []
    for perplexity in (3.0, 10.0, 30.0):
        p = tsne_affinities(x, perplexity)  # (200, 200)
        assert torch.allclose(p, p.T) and p.diagonal().eq(0).all()
        assert p.sum().item() == pytest.approx(1.0, rel=1e-5)
        nearest = torch.cdist(x, x).fill_diagonal_(math.inf).argmin(dim=1)
        assert (p[torch.arange(200), nearest] > 0).all()
        entropies.append(-torch.xlogy(p, p).sum().item())
    assert entropies == sorted(entropies)  # a higher perplexity spreads each row over more neighbours
    # a batch of 4 still gives a finite distribution (the perplexity is capped at a third of the batch)
    assert torch.isfinite(tsne_affinities(x[:4])).all()


def test_tsne_keeps_neighbours_in_two_dimensions(digits_flat: np.ndarray) -> None:
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier

    y = load_digits().target
    train, test = slice(0, 1200), slice(1200, None)
    params = {"n_components": 2, "hidden_layer_sizes": (64,), "scaling": "none", "max_iter": 60}
    params |= {"batch_size": 200, "learning_rate": 3e-3}
    measured = {}
    for penalty in ("none", "tsne"):
        ae = fit(digits_flat[train], **params, penalty=penalty, penalty_weight=300.0)
        z_train, z_test = ae.transform(digits_flat[train]), ae.transform(digits_flat[test])
        knn = KNeighborsClassifier(5).fit(z_train, y[train]).score(z_test, y[test])  # held-out rows
        measured[penalty] = (knn, trustworthiness(digits_flat[test], z_test, n_neighbors=5))
    assert measured["tsne"][0] > measured["none"][0] + 0.1  # kNN-5 accuracy: 0.63 -> 0.81 when written
    assert measured["tsne"][1] > measured["none"][1] + 0.01


# ---------------------------------------------------------------------------------------- variational


VAE = {"n_components": 8, "hidden_layer_sizes": (64,), "bottleneck": "gaussian", "batch_size": 50}
VAE |= {"learning_rate": 3e-3, "max_iter": 15}


@pytest.fixture(scope="module")
def vae(digits: np.ndarray) -> Autoencoder:
    return fit(digits[:600], **VAE)


def test_vae_elbo_improves_during_training(vae: Autoencoder, digits: np.ndarray) -> None:
    losses = [record["train_loss"] for record in vae.history_]  # the negative ELBO: beta 1, no warm-up
    assert losses[-1] < losses[0] - 5.0
    early = fit(digits[:600], **{**VAE, "max_iter": 1})
    held_out = digits[600:900]
    assert vae.log_likelihood(held_out, n_importance=1).mean() > early.log_likelihood(held_out, n_importance=1).mean()


def test_importance_weighting_tightens_the_elbo(vae: Autoencoder, digits: np.ndarray) -> None:
    x = digits[600:800]
    draws = np.stack([vae.log_likelihood(x, n_importance=1, random_state=seed) for seed in range(20)])
    elbo, noise = draws.mean(axis=0), 3 * draws.std(axis=0) / math.sqrt(len(draws))  # per sample
    bound = vae.log_likelihood(x, n_importance=500, random_state=100)
    assert bound.shape == (len(x),) and np.isfinite(bound).all()
    assert bound.mean() > elbo.mean()
    assert (bound >= elbo - noise).mean() >= 0.95  # per sample, up to Monte Carlo noise
    assert bound.mean() >= vae.log_likelihood(x, n_importance=10, random_state=101).mean() - noise.mean()


def test_vae_samples_and_interpolations_look_like_data(vae: Autoencoder, digits: np.ndarray) -> None:
    samples = vae.sample(20, random_state=0)
    assert samples.shape == (20, 1, 8, 8)
    assert samples.min() >= digits.min() and samples.max() <= digits.max()
    assert np.array_equal(samples, vae.sample(20, random_state=0))
    path = vae.interpolate(digits[0], digits[1], steps=5)
    assert path.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(path[0], vae.reconstruct(digits[:1])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(path[-1], vae.reconstruct(digits[1:2])[0], rtol=1e-5, atol=1e-5)
    assert vae.interpolate(digits[:3], digits[3:6], steps=4).shape == (3, 4, 1, 8, 8)


def test_vae_transform_is_the_posterior_mean(vae: Autoencoder, digits: np.ndarray) -> None:
    x = digits[:10]
    scaled = torch.from_numpy(vae.scaler_.transform(x))
    with torch.no_grad():
        mean, _ = vae.net_.bottleneck.posterior(vae.net_.encoder(scaled))
    np.testing.assert_allclose(vae.transform(x), mean.numpy(), rtol=1e-6, atol=1e-6)
    assert np.array_equal(vae.transform(x), vae.transform(x))


@pytest.mark.parametrize("loss", ["bce", "mse", "gaussian"])
def test_vae_losses_stay_finite_on_constant_data(loss: str) -> None:
    constant = np.full((64, 6), 3.0, np.float32)
    zero_var = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    zero_var[:, [1, 4]] = 7.0
    for x in (constant, zero_var):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the PCA baseline of constant data divides 0 by 0
            ae = fit(x, n_components=2, hidden_layer_sizes=(8,), bottleneck="gaussian", loss=loss, max_iter=10)
        assert all(math.isfinite(v) for record in ae.history_ for v in record.values())
        assert np.isfinite(ae.log_likelihood(x, n_importance=4)).all()


def test_log_likelihood_is_a_density_in_the_callers_units(tabular: np.ndarray) -> None:
    params = {"n_components": 2, "bottleneck": "gaussian", "loss": "gaussian", "scaling": "standard"}
    a, b = fit(tabular, **params), fit(10 * tabular, **params)  # the same scaled data, the same network
    diff = b.log_likelihood(10 * tabular, random_state=0) - a.log_likelihood(tabular, random_state=0)
    np.testing.assert_allclose(diff, -12 * math.log(10), rtol=1e-3)


def test_kl_warmup_and_free_bits() -> None:
    config = ModelConfig(n_components=4, bottleneck="gaussian", beta=2.0, kl_warmup=4)
    assert [kl_weight(config, e) for e in (1, 2, 4, 9)] == [0.5, 1.0, 2.0, 2.0]
    h = torch.zeros(8, 8)  # posterior N(0, 1): zero KL in every dimension
    free = Gaussian(dataclasses.replace(config, kl_warmup=0, free_bits=0.25))
    assert free(h, generator=torch.Generator()).terms["kl"].item() == pytest.approx(2.0 * 4 * 0.25)
    assert Gaussian(config)(h, generator=torch.Generator(), epoch=9).terms["kl"].item() == 0.0


def test_dynamic_binarization_trains_on_fresh_draws(digits_flat: np.ndarray) -> None:
    config = ModelConfig(n_components=4, hidden_layer_sizes=(8,), binarize=True, loss="bce")
    net = build_net(config, (64,), seed=0)  # a deterministic code: only the binarization draws anything
    x = torch.from_numpy(digits_flat[:50])
    assert ((x > 0) & (x < 1)).any()  # grey values, which a binarized target never holds
    net.train()
    losses = []
    for seed in (0, 1):
        # the loss is that of a Bernoulli draw of the pixels, input and target alike, fresh for each generator;
        # on the grey values themselves it differs by about 1e-3 (equal in expectation: the loss is linear in
        # the target)
        drawn = torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))
        losses.append(net.loss(x, generator=torch.Generator().manual_seed(seed))["reconstruction"].item())
        assert losses[-1] == pytest.approx(net.reconstruction_loss(drawn).mean().item(), rel=1e-6)
    assert losses[0] != losses[1]
    net.eval()  # evaluation sees the data as they are
    assert net.loss(x)["reconstruction"].item() == pytest.approx(net.reconstruction_loss(x).mean().item())
    ae = fit(digits_flat[:200], n_components=4, bottleneck="gaussian", binarize=True, scaling="none", max_iter=2)
    assert all(math.isfinite(r["train_loss"]) for r in ae.history_)


def test_generative_methods_need_a_generative_model(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=3, max_iter=1)
    with pytest.raises(ConfigError, match=r"bottleneck='deterministic'.*bottleneck='gaussian'"):
        ae.sample(3)
    with pytest.raises(ConfigError, match="log_likelihood needs a generative model"):
        ae.log_likelihood(tabular)
    assert ae.interpolate(tabular[0], tabular[1], steps=3).shape == (3, 12)  # any bottleneck interpolates
    with pytest.raises(ConfigError, match="steps=1"):
        ae.interpolate(tabular[0], tabular[1], steps=1)


def test_denoising_sparse_is_two_settings(tabular: np.ndarray) -> None:
    ae = fit(tabular, n_components=20, penalty="topk", sparsity_k=4, corruption="gaussian", noise_level=0.2)
    assert ((ae.transform(tabular) != 0).sum(axis=1) == 4).all()


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
def test_every_bottleneck_keeps_the_promises_it_declares(name: str) -> None:
    """What a bottleneck declares (``variational``, ``integer_code``) is what it does: the rest of isthmus
    asks the declaration, never the bottleneck's attributes."""
    config = ModelConfig(n_components=3, bottleneck=name, loss="mse")
    bottleneck = BOTTLENECKS[name](config)
    assert isinstance(bottleneck, Bottleneck)
    h = torch.randn(16, bottleneck.encoder_width, generator=torch.Generator().manual_seed(0))
    out = bottleneck.eval()(h)
    assert out.code.shape == out.mean.shape == (16, 3)
    if bottleneck.variational:
        mean, log_var = bottleneck.posterior(h)
        assert mean.shape == log_var.shape == (16, 3)
        torch.testing.assert_close(out.mean, mean)
    else:
        with pytest.raises(TypeError, match="no posterior"):
            bottleneck.posterior(h)
    assert bottleneck.tables is None
    tables = bottleneck.build_tables(h)
    assert (tables is not None) == bottleneck.integer_code
    if bottleneck.integer_code:
        assert bottleneck.tables is tables and len(tables.cdf) == 3
        assert torch.equal(out.mean, out.mean.round())  # an integer code


# ---------------------------------------------------------------------------------------------- a new penalty


def _power(ctx: PenaltyContext) -> torch.Tensor:
    """A made-up penalty: the batch mean of sum_j |code_j| ** power."""
    return ctx.code.abs().pow(ctx.params["power"]).sum(dim=1).mean()


def _at_least_one(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1


MADE_UP = Penalty(term=_power, weight=1.0, params={"power": Param(2.0, "the exponent", _at_least_one, "a number >= 1")})


def test_a_penalty_with_a_hyper_parameter_is_one_table_entry(
    monkeypatch: pytest.MonkeyPatch, tabular: np.ndarray, tmp_path: Path
) -> None:
    # the table entry alone, nothing else registered: the choices, the checks, the estimator, the model file follow
    monkeypatch.setitem(PENALTIES, "made_up", MADE_UP)
    assert "made_up" in choices()["penalty"]
    assert '"made_up"}, default="none"' in document_choices('    penalty : {...}, default="none"')  # documented
    seen: list[float] = []

    def power(ctx: PenaltyContext) -> torch.Tensor:
        seen.append(ctx.params["power"])
        return _power(ctx)

    monkeypatch.setitem(PENALTIES, "made_up", MADE_UP._replace(term=power))
    params = {"n_components": 3, "penalty": "made_up", "penalty_weight": 10.0, "max_iter": 20}
    ae = fit(tabular, **params, penalty_params={"power": 1})
    assert set(seen) == {1}  # the value given reached the term
    plain = fit(tabular, **{**params, "penalty": "none"})
    # the term acts: an L1 pull of weight 10 shrinks the code well below the unpenalized one's
    assert np.abs(ae.transform(tabular)).mean() < 0.5 * np.abs(plain.transform(tabular)).mean()
    seen.clear()
    fit(tabular, **{**params, "max_iter": 1})
    assert set(seen) == {2.0}  # the entry's default
    # scikit-learn's parameter contract and the model file keep the hyper-parameters
    assert clone(ae).get_params()["penalty_params"] == {"power": 1}
    assert ae.set_params(penalty_params={"power": 3}).penalty_params == {"power": 3}
    ae.set_params(penalty_params={"power": 1}).save(tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert loaded.penalty_params == {"power": 1}
    np.testing.assert_allclose(loaded.transform(tabular), ae.transform(tabular), rtol=1e-6)


@pytest.mark.parametrize(
    ("penalty_params", "message"),
    [
        ({"power": 0.5}, r"power=0.5 must be a number >= 1"),
        ({"gamma": 2}, r"penalty_params sets gamma, but penalty='made_up' takes power"),
        ({"sparsity_target": 0.1}, r"sparsity_target, which is a parameter of its own: set sparsity_target=0.1"),
        (["power"], r"must map the penalty's hyper-parameter names to values"),
    ],
)
def test_a_penalty_refuses_hyper_parameters_it_does_not_take(
    monkeypatch: pytest.MonkeyPatch, penalty_params: object, message: str
) -> None:
    monkeypatch.setitem(PENALTIES, "made_up", MADE_UP)
    with pytest.raises(ConfigError, match=message):
        split_params({"penalty": "made_up", "penalty_params": penalty_params})
