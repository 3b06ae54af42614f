"""Autoencoder: the scikit-learn estimator that every use of isthmus goes through."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, validate_data

from isthmus import artifact, codec, crops, distributed, fitting, generative, scoring
from isthmus import fitted as fitted_module
from isthmus import train as training
from isthmus.checkpoint import checkpoint_seed
from isthmus.config import document_choices, split_params
from isthmus.data import check_finite
from isthmus.data.schema import (
    Schema,
    as_output,
    check_rows,
    infer_schema,
    is_table,
    needs_schema_path,
    numeric_schema,
    numeric_table,
    read_columns,
)
from isthmus.data.series import as_series
from isthmus.data.stream import Rows
from isthmus.diagnostics import constant_predictor_warning
from isthmus.errors import DataError
from isthmus.fitted import Fitted, check_fitted
from isthmus.inputs import as_input, check_shape
from isthmus.model import build_net, net_shape
from isthmus.scaling import resolve_scaling
from isthmus.series import (
    reconstruct_series,
    scaled_windows,
    score_series,
    training_split,
    windows_of,
)
from isthmus.settings import DEFAULTS, ModelConfig, TrainConfig


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """An autoencoder with a bottleneck of ``n_components`` units, used like scikit-learn's PCA.

    Parameters
    ----------
    n_components : int, default=2
        Width of the code (the bottleneck).
    hidden_layer_sizes : tuple of int, default=(256, 128)
        Encoder widths from the input toward the code (the decoder mirrors them); channel counts of
        the stride-2 convolutions when ``architecture="conv"`` or ``"resconv"``.
    architecture : {...}, default="mlp"
        ``"conv"`` needs image data ``(n_samples, channels, height, width)``; ``"resconv"`` is ``"conv"``
        with a residual 3x3 convolution at each of the decoder's hidden resolutions (a deeper decoder).
        ``"conv1d"`` is for series windows (``window``): stride-2 temporal convolutions over
        ``(n_windows, channels, window)``.
    activation : {...}, default="relu"
        Hidden-layer activation (``nets.ACTIVATIONS``).
    bottleneck : {...}, default="deterministic"
        ``"gaussian"`` makes a variational autoencoder: the loss is the negative ELBO and ``sample``,
        ``log_likelihood`` become available; ``transform`` still gives the posterior mean.
        ``"quantized"`` learns an integer code and its density, traded off by ``lmbda``: ``compress``
        entropy-codes it (``bottlenecks.BOTTLENECKS``).
    penalty : {...}, default="none"
        A code regularizer from ``penalties.PENALTIES``. All but ``"none"`` allow an overcomplete code
        (``n_components`` >= n_features). ``"kl_sparsity"`` and ``"contractive"`` make the code a sigmoid;
        ``"tsne"`` keeps each batch's neighbourhoods in the code.
    penalty_weight : float or "auto", default="auto"
        Weight of the penalty term (unused by ``"topk"``, which is a constraint). ``"auto"`` is the
        penalty's own working weight, the ``weight`` of its entry in ``penalties.PENALTIES``.
    sparsity_target : float, default=0.05
        Target mean activation of each code unit for ``penalty="kl_sparsity"``.
    sparsity_k : int, default=10
        Non-zero code units per sample for ``penalty="topk"``; at most ``n_components``.
    penalty_params : dict of str to value, optional
        The penalty's other hyper-parameters by name. Each entry of ``penalties.PENALTIES`` declares its own
        (``Penalty.params``: default, meaning, allowed values), so a new penalty needs no new parameter
        here; ``sparsity_target`` and ``sparsity_k`` are parameters of their own.
    corruption : {...}, default="none"
        Noise on the encoder's input in training only; the loss is against the clean input.
    noise_level : float, default=0.1
        Standard deviation of the Gaussian corruptions in the data's own units (the units of ``X``, as
        the noise of the data to be denoised is measured), or the probability that a value is masked
        or salted.
    binarize : bool, default=False
        Dynamic binarization: in training, each scaled value in [0, 1] is replaced, every time its sample
        is used, by a Bernoulli draw with that probability (input and target alike). Needs ``loss="bce"``.
    beta : float, default=1.0
        Weight of the KL term of ``bottleneck="gaussian"`` (beta-VAE for beta > 1).
    kl_warmup : int, default=0
        Epochs over which the KL weight ramps linearly up to ``beta`` (0: no warm-up).
    free_bits : float, default=0.0
        Nats per latent dimension below which its KL is not penalized (0: off).
    lmbda : float, default=0.01
        Weight of the rate (bits per sample) against the distortion for ``bottleneck="quantized"``: a
        higher ``lmbda`` gives smaller ``compress`` outputs and coarser reconstructions.
    straight_through : bool, default=False
        With ``bottleneck="quantized"``, train the decoder on the rounded code with the gradient passed
        straight through the rounding, instead of on the code plus uniform noise.
    pixel_model : {...}, default="counts"
        The pixel model of lossless streams, built at the end of ``fit`` when the training data are 8-bit
        (docs/format.md, section 4.6). ``"counts"``: tables counted per causal context (cheap to fit, fast
        to code). ``"net"``: a small network, run in integer arithmetic, that predicts each value's 256-way
        distribution from the reconstruction around it and its decoded neighbours: smaller lossless
        streams, for a longer ``fit`` and slower lossless coding (README, "Measured results").
    loss : {...}, default="auto"
        ``"auto"``: binary cross-entropy with a sigmoid output when the scaled training data lie in
        [0, 1], else squared error with a linear output. ``"gaussian"``: the Gaussian negative
        log-likelihood with one learned standard deviation per feature, the proper likelihood of a VAE
        on real-valued data.
    scaling : {...}, default="auto"
        Fitted on the training data and stored; ``"auto"`` is min-max for images, standard otherwise.
        ``"robust"``: the median and the interquartile range (in standard deviations of a normal), which
        the anomalies in the training data do not move; see ``isthmus.scaling.SCALINGS``. Per channel for a
        series (``window``). With a Gaussian ``corruption``, a standard or robust scale is
        ``sqrt(spread**2 + noise_level**2)``: the spread of the noisy inputs the network sees.
    fully_convolutional : bool, default=False
        With ``architecture="conv"`` or ``"resconv"``: no linear layer, so the code is a map of
        ``n_components`` channels, one position per ``2**len(hidden_layer_sizes)`` pixels a side, and the
        model takes images of any height and width with the training data's channels (padded to a
        multiple of that stride, and cropped back). ``transform`` then gives ``(n, n_components, h, w)``.
        With ``"conv1d"``, a code map over time, ``(n_windows, n_components, ceil(window / stride))``, and
        windows of any length: ``set_params(window=...)`` after ``fit`` changes the windows used.
    crop_size : int or None, default=None
        Train on square crops of this many pixels a side, drawn at random positions afresh every epoch,
        from images of any sizes: ``fit`` then also takes a list of images ``(channels, height, width)``.
        Needs ``fully_convolutional=True``.
    trim_fraction : float in [0, 1), default=0.0
        The fraction of each training batch's worst-reconstructed rows left out of the reconstruction
        loss, so that anomalies in the training data do not teach the network to reconstruct them
        (``isthmus.model.trimmed_mean``).
    n_estimators : int, default=1
        Networks trained alike from different seeds (an ensemble, Chen et al., SDM 2017). ``net_`` is the
        first; the others (``members_``) count only in the anomaly scores that average over an ensemble
        (``"reconstruction_knn"``). Checkpoints and logs follow the first network only; on ``resume`` the others
        are retrained from their seeds, so a resumed ensemble equals one fitted straight through.
    categorical_features : list of str, optional
        Columns of a table to read as categories whatever their type. Without it, text, pandas
        ``category``, Arrow dictionaries and booleans are categorical, numbers numeric
        (:mod:`isthmus.data.schema`). A categorical column enters the encoder one-hot and leaves the
        decoder as a softmax over its levels, with a Brier-score loss (:mod:`isthmus.columns`).
    column_weights : dict of str to float, optional
        Loss weight of single columns by name. By default each kind (numeric, categorical) carries half
        of the total weight, so that neither dominates by its count of columns.
    cell_dropout : float, default=0.2
        For tables with categorical columns or missing cells: the fraction of cells hidden from the
        encoder in training (marked missing, still in the loss), so that the model learns to fill
        missing cells (``impute``).
    window : int or None, default=None
        Make a series model: ``fit``, ``score_samples``, ``predict``, ``reconstruct`` and ``transform`` take a
        series ``(n_timestamps,)`` or ``(n_timestamps, n_channels)`` (NumPy, a DataFrame with a datetime
        index or column, a CSV/Parquet path) and cut it into overlapping windows of ``window`` timestamps
        (``isthmus.series``). Scores, flags and reconstructions come back per timestamp, codes per window.
        ``fit`` trains on the first ``1 - validation_fraction`` of the series and sets the threshold
        ``offset_`` from the scores of the rest.
    window_stride : int, default=1
        Timestamps between the starts of consecutive windows (the last window always ends at the last
        timestamp).
    max_iter, batch_size, learning_rate, weight_decay : training schedule (Adam).
    max_steps : int or None, default=None
        A budget in gradient steps (batches), whichever of it and ``max_iter`` epochs comes first, so that a
        small table trains as many steps as a large one (whole epochs, the last one counted in full).
        Spending it is the end the caller chose, so it raises no ConvergenceWarning, unlike ``max_iter``.
    lr_schedule : {...}, default="constant"
        ``"cosine"`` anneals the learning rate to zero over ``max_iter`` epochs.
    early_stopping, validation_fraction, n_iter_no_change, tol, target_loss : stopping rules.
    random_state : int or None
        Seeds weights, splits, shuffling and noise: equal seeds give bit-identical weights on CPU.
    verbose : int, default=1
        ``0`` is silent; ``1`` shows a progress bar with live losses.
    device : {...}, default="auto"
    precision : {...}, default="auto"
        Autocast dtype for training and encoding; the loss and the optimizer state stay float32.
        ``"auto"`` is bf16 (else fp16) on CUDA and fp32 on CPUs; ``"bf16"`` also runs on CPUs;
        ``"fp16"`` needs CUDA (its gradients are scaled against underflow).
    on_divergence : {...}, default="stop"
        On a NaN or infinite loss, stop with an error (the last checkpoint holds the last good epoch),
        or restart from the last good epoch with half the learning rate, up to three times.
    anomaly_score : {...}, default="reconstruction"
        What ``score_samples`` returns (higher for normal rows): minus the squared reconstruction error
        (after the scaler), minus the sum of fourth powers of those errors (a few large errors, such as a
        missing stroke, outweigh many small ones), or, for ``bottleneck="gaussian"``, the ELBO or the
        importance-weighted log-likelihood in nats; ``"reconstruction_knn"`` adds the log distance from
        the row's code to its 10th nearest training code to the log error, each standardized on the
        training rows, averaged over an ensemble (``isthmus.neighbours``); ``"reconstruction_knn_input"``
        normalizes the error per feature and adds the log distance to the 10th nearest training row
        (the ``anomaly`` preset's). See ``isthmus.scoring``.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``: a number is the fraction of rows flagged as anomalies; ``"auto"`` is Tukey's
        box-plot fence (1.5 interquartile ranges past the quartile) on the log reconstruction errors, or
        on the ELBO or log-likelihood scores. The scores are those of held-out rows: with a number, fit
        holds out ``validation_fraction`` of the rows (the early-stopping split) and trains on the rest,
        so that new rows like the training data are flagged at about that rate; ``"auto"`` uses the
        held-out rows with ``early_stopping``, else the training rows (whose scores are optimistic).

    Attributes
    ----------
    net_ : AutoencoderNet
    members_ : list of AutoencoderNet
        The ensemble's other ``n_estimators - 1`` networks (empty by default).
    scaler_ : Scaler
    input_shape_ : tuple of int
        One sample's shape as given to ``fit``.
    history_ : list of dict
        Per-epoch named metrics.
    n_iter_ : int
    best_loss_ : float
    stop_reason_ : str
        Why training stopped, in one sentence with its numbers: early stopping (the epoch, the best
        epoch and the patience ``n_iter_no_change``), ``target_loss`` reached, or ``max_iter`` run out. A
        diverging run raises TrainingError instead, whose message says why. ``fit`` also warns when the
        model reconstructs its training data no better than their mean row does.
    n_features_in_ : int
        Columns of a table (or values per sample of other data).
    feature_names_in_ : ndarray of str
        Column names, when the training table had them.
    schema_ : Schema or None
        The training table's columns (names, order, kinds, levels), stored in the model file; None for
        images and streamed data.
    score_state_ : dict of str to ndarray
        What ``anomaly_score`` learned from the training rows (``"reconstruction_knn"``: the reference
        codes, and the center and spread of its two components); empty for the other scores.
    offset_ : float
        Threshold on ``score_samples`` set by ``contamination`` (``decision_function = score_samples -
        offset_``), for the ``anomaly_score`` and ``contamination`` of the fit.
    """

    def __init__(
        self,
        n_components: int = DEFAULTS["n_components"],
        *,
        hidden_layer_sizes: Sequence[int] = DEFAULTS["hidden_layer_sizes"],
        architecture: str = DEFAULTS["architecture"],
        activation: str = DEFAULTS["activation"],
        bottleneck: str = DEFAULTS["bottleneck"],
        penalty: str = DEFAULTS["penalty"],
        penalty_weight: float | str = DEFAULTS["penalty_weight"],
        sparsity_target: float = DEFAULTS["sparsity_target"],
        sparsity_k: int = DEFAULTS["sparsity_k"],
        penalty_params: dict[str, Any] | None = DEFAULTS["penalty_params"],
        corruption: str = DEFAULTS["corruption"],
        noise_level: float = DEFAULTS["noise_level"],
        binarize: bool = DEFAULTS["binarize"],
        beta: float = DEFAULTS["beta"],
        kl_warmup: int = DEFAULTS["kl_warmup"],
        free_bits: float = DEFAULTS["free_bits"],
        lmbda: float = DEFAULTS["lmbda"],
        straight_through: bool = DEFAULTS["straight_through"],
        pixel_model: str = DEFAULTS["pixel_model"],
        loss: str = DEFAULTS["loss"],
        scaling: str = DEFAULTS["scaling"],
        fully_convolutional: bool = DEFAULTS["fully_convolutional"],
        crop_size: int | None = DEFAULTS["crop_size"],
        trim_fraction: float = DEFAULTS["trim_fraction"],
        n_estimators: int = DEFAULTS["n_estimators"],
        categorical_features: Sequence[str] | None = DEFAULTS["categorical_features"],
        column_weights: dict[str, float] | None = DEFAULTS["column_weights"],
        cell_dropout: float = DEFAULTS["cell_dropout"],
        window: int | None = DEFAULTS["window"],
        window_stride: int = DEFAULTS["window_stride"],
        max_iter: int = DEFAULTS["max_iter"],
        max_steps: int | None = DEFAULTS["max_steps"],
        batch_size: int = DEFAULTS["batch_size"],
        learning_rate: float = DEFAULTS["learning_rate"],
        weight_decay: float = DEFAULTS["weight_decay"],
        lr_schedule: str = DEFAULTS["lr_schedule"],
        early_stopping: bool = DEFAULTS["early_stopping"],
        validation_fraction: float = DEFAULTS["validation_fraction"],
        n_iter_no_change: int = DEFAULTS["n_iter_no_change"],
        tol: float = DEFAULTS["tol"],
        target_loss: float | None = DEFAULTS["target_loss"],
        random_state: int | None = DEFAULTS["random_state"],
        verbose: int = DEFAULTS["verbose"],
        device: str = DEFAULTS["device"],
        precision: str = DEFAULTS["precision"],
        on_divergence: str = DEFAULTS["on_divergence"],
        anomaly_score: str = DEFAULTS["anomaly_score"],
        contamination: float | str = DEFAULTS["contamination"],
    ) -> None:
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.architecture = architecture
        self.activation = activation
        self.bottleneck = bottleneck
        self.penalty = penalty
        self.penalty_weight = penalty_weight
        self.sparsity_target = sparsity_target
        self.sparsity_k = sparsity_k
        self.penalty_params = penalty_params
        self.corruption = corruption
        self.noise_level = noise_level
        self.binarize = binarize
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.lmbda = lmbda
        self.straight_through = straight_through
        self.pixel_model = pixel_model
        self.loss = loss
        self.scaling = scaling
        self.fully_convolutional = fully_convolutional
        self.crop_size = crop_size
        self.trim_fraction = trim_fraction
        self.n_estimators = n_estimators
        self.categorical_features = categorical_features
        self.column_weights = column_weights
        self.cell_dropout = cell_dropout
        self.window = window
        self.window_stride = window_stride
        self.max_iter = max_iter
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.target_loss = target_loss
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.precision = precision
        self.on_divergence = on_divergence
        self.anomaly_score = anomaly_score
        self.contamination = contamination

    # ------------------------------------------------------------------ fitting

    def _configs(self) -> tuple[ModelConfig, TrainConfig]:
        return split_params(self.get_params())

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: str | os.PathLike[str] | None = None,
        log: str | os.PathLike[str] | None = None,
        callbacks: Sequence[training.Callback] = (),
    ) -> Autoencoder:
        """Learn the scaler and the network from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [channels,] height, width)
            Training data in the caller's units; also pandas DataFrames and torch tensors.
        y : ignored
        checkpoint : path, optional
            Write a checkpoint there after every epoch (atomically).
        resume : path, optional
            Continue the run whose checkpoint is at this path (and keep checkpointing there).
        log : path, optional
            Append per-epoch metrics as JSON lines.
        callbacks : sequence of callables
            ``callback(epoch, record)`` after each epoch.

        Returns
        -------
        self : Autoencoder
        """
        model_cfg, train_cfg = self._configs()
        streaming, cropping = isinstance(X, Rows), train_cfg.crop_size is not None
        fitting.check_form(model_cfg, train_cfg, streaming)
        split = None
        if model_cfg.window is not None:  # a series: its windows are the samples
            split = training_split(X, model_cfg.window, model_cfg.window_stride, train_cfg.validation_fraction)
            x = split.train.x  # (n_windows, n_channels, window)
            self._set_shape(x.shape[1:])
            n_samples = len(x)
        elif cropping:  # images of any sizes, trained on in crops (isthmus.crops)
            images, crop = crops.as_images(X), int(train_cfg.crop_size or 0)
            self._set_shape((images[0].shape[0], crop, crop))
            n_samples = len(images)
        elif streaming:
            self._set_shape(X.sample_shape)
            n_samples = len(X)
        else:
            x = self._validate(X, reset=True)
            n_samples = len(x)
        is_image = len(self.input_shape_) > 1 and split is None
        shape = net_shape(self.input_shape_) if split is None else tuple(self.input_shape_)
        fitting.check_sizes(model_cfg, train_cfg, self.input_shape_, shape, n_samples)
        checkpoint = resume if resume is not None else checkpoint
        seed = self._seed(resume)

        scaling = resolve_scaling(model_cfg.scaling, is_image)
        noise = fitting.training_noise(model_cfg)  # data units
        if cropping:
            data = fitting.cropped(images, crop, scaling, shape, train_cfg, seed, noise)
        elif streaming:
            data = fitting.streamed(X, scaling, shape, train_cfg, seed, is_image=is_image, noise=noise)
        else:
            if self.schema_ is not None:  # the network sees missing cells when a table has them or categories
                mask = self.schema_.categorical or bool(np.isnan(x).any())
                self.schema_ = dataclasses.replace(self.schema_, missing_mask=mask)
            levels = None if self.schema_ is None else self.schema_.level_positions()
            data = fitting.in_memory(
                x,
                scaling,
                shape,
                train_cfg,
                seed,
                is_image=is_image,
                levels=levels,
                split=split,
                window=model_cfg.window,
                noise=noise,
            )
        config = dataclasses.replace(model_cfg, loss=data.loss(model_cfg.loss))
        net = build_net(config, self.input_shape_, seed, self.schema_)
        net.set_data_scale(torch.from_numpy(data.scaler.scale.reshape(shape)))  # noise_level is in the data's units
        scoring.check_score(net, train_cfg.anomaly_score)  # before training, not after
        result = training.train(
            net,
            data.train,
            data.val,
            train_cfg,
            seed=seed,
            checkpoint=checkpoint,
            resume=resume is not None,
            log=log,
            callbacks=callbacks,
            settle_epochs=model_cfg.kl_warmup,  # the KL weight ramps up: the loss is not comparable before
        )
        members = fitting.train_members(config, self.input_shape_, data, train_cfg, seed, self.schema_)
        fitted, scaled = fitting.complete(
            self.get_params(),
            net,
            members,
            result,
            data,
            train_cfg,
            input_shape=self.input_shape_,
            is_image=is_image,
            scaling=scaling,
            schema=self.schema_,
            feature_names=getattr(self, "feature_names_in_", None),
            seed=seed,
        )
        self._set_fitted(fitted)
        useless = constant_predictor_warning(net, scaled, train_cfg.precision)
        if useless is not None:
            warnings.warn(useless, UserWarning, stacklevel=2)
        # a step budget is the caller's choice (the anomaly preset's 300 steps): spending it is not a failure
        # to converge, and more steps are not better there; stop_reason_ still says that it ran out
        if not result.converged and not result.spent_steps:
            warnings.warn(
                f"{result.stop_reason}; raise max_iter (or max_steps) for a better fit",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _set_fitted(self, fitted: Fitted) -> None:
        # the one place the learned attributes are set: fit and load both come here
        for name, value in fitted.attributes().items():
            setattr(self, name, value)
        for name in fitted_module.OPTIONAL:
            if getattr(fitted, name) is None and hasattr(self, f"{name}_"):
                delattr(self, f"{name}_")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Autoencoder:
        """A fitted estimator from a model file written by ``save`` or ``export_encoder`` (no unpickling)."""
        fitted = artifact.load(path)
        model = cls(**fitted.params)
        model._set_fitted(fitted)
        return model

    def _seed(self, resume: str | os.PathLike[str] | None) -> int:
        stored = None if resume is None else checkpoint_seed(resume)
        if stored is not None:
            return stored
        # every rank of a process group must split, shuffle and initialize alike: rank 0's seed wins
        return distributed.broadcast_int(int(check_random_state(self.random_state).randint(2**31 - 2)))

    # ------------------------------------------------------------------ validation

    def _validate(self, X: Any, *, reset: bool) -> np.ndarray:
        schema = None if reset else getattr(self, "schema_", None)
        if is_table(X) and not reset and schema is None:  # images, streamed rows, old files: numbers by position
            X = numeric_table(X)
        if not is_table(X):
            X = as_input(X)  # tensors, torch Datasets, lists; DataFrames pass through with their column names
        if is_table(X) or needs_schema_path(X) or (schema is not None and (schema.named or schema.categorical)):
            return self._validate_table(X, reset=reset)  # matched by name, categories encoded, NaN for missing
        ndim = X.ndim
        if ndim < 2:
            raise DataError(
                f"X must hold samples along its first axis, (n_samples, n_features) or images; got a {ndim}-D "
                f"array of shape {tuple(X.shape)}. Reshape your data: X.reshape(1, -1) if it is one sample, "
                "X.reshape(-1, 1) if it is one feature"
            )
        if ndim > 2:
            x = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=False)
            check_finite(x, "X")
            if reset:
                self._set_shape(x.shape[1:])
            else:
                self._check_shape(tuple(x.shape[1:]))
            return x
        if not reset:
            self._check_shape(tuple(X.shape[1:]))
        x = validate_data(self, X, reset=reset, dtype=np.float32, ensure_all_finite=False)
        missing = np.isnan(x)
        check_finite(np.where(missing, np.float32(0.0), x), "X")  # missing cells (NaN) are allowed, infinity not
        check_rows(missing.all(axis=1), "X")
        if reset:
            self.input_shape_: tuple[int, ...] = (x.shape[1],)
            self.schema_ = numeric_schema(x.shape[1])
        return x.reshape(len(x), *self.input_shape_)

    def _validate_table(self, X: Any, *, reset: bool) -> np.ndarray:
        """A table read column by column through the schema: ``(n_rows, schema.width)`` float32, NaN missing."""
        if reset:
            columns = read_columns(X)
            self.schema_ = infer_schema(columns, self.categorical_features)
            self.n_features_in_ = len(self.schema_.columns)
            self.input_shape_ = (self.schema_.width,)
            if self.schema_.named:
                self.feature_names_in_ = np.array(self.schema_.names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        assert self.schema_ is not None  # set above, or by the fit this call follows
        if not reset and self.schema_.named and not is_table(X):  # scikit-learn's warning, in its words
            warnings.warn(
                f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names; "
                "its columns are taken in the training order",
                UserWarning,
                stacklevel=3,
            )
        return self.schema_.encode(self.schema_.align(X))

    schema_: Schema | None

    def _set_shape(self, sample_shape: Sequence[int]) -> None:
        self.input_shape_ = tuple(int(s) for s in sample_shape)
        self.n_features_in_ = math.prod(self.input_shape_)
        self.schema_ = None  # images and streamed rows have no column schema
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_fitted(self) -> None:
        check_fitted(self)

    def _state(self) -> Fitted:
        # the fitted state as one record, for the functions of the layers below (NotFittedError if none)
        return Fitted.of(self)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        self._check_fitted()
        check_shape(shape, self.input_shape_, type(self).__name__, any_size=self.net_.config.fully_convolutional)

    # ------------------------------------------------------------------ using

    def _scaled(self, X: Any) -> np.ndarray:
        state = self._state()
        if self.window is not None:  # the windows of a series, (n_windows, n_channels, window)
            return scaled_windows(state, windows_of(state, X))
        return state.scale(self._validate(X, reset=False))

    def transform(self, X: Any) -> np.ndarray:
        """Encode ``X`` into its deterministic code, shape (n_samples, n_components).

        ``X`` may also be a streamed source (:func:`isthmus.data.open_rows`), encoded a chunk at a time.
        A series model (``window=W``) gives one code per window, shape (n_windows, n_components): the
        windows start every ``window_stride`` timestamps, the last ends at the last timestamp, and each
        code belongs to its window's end timestamp (``isthmus.series.Windows.ends``).
        """
        state = self._state()
        if isinstance(X, Rows):
            return np.concatenate(list(self.iter_transform(X)))
        return state.encode(self._scaled(X))

    def iter_transform(self, rows: Rows) -> Iterator[np.ndarray]:
        """Codes of a streamed source, one array per chunk, in row order: bounded memory for any size."""
        self._check_fitted()
        self._check_shape(rows.sample_shape)
        for chunk in rows.iter_chunks():
            yield self.transform(chunk.reshape(len(chunk), *self.input_shape_))

    def _decoded(self, z: np.ndarray) -> np.ndarray:
        """Codes ``(n, n_components)`` decoded to ``(n, *input_shape)`` in the caller's units (a table's
        categorical columns as probabilities of their levels)."""
        return self._state().decode(z)

    def _as_table(self, columns: dict[str, np.ndarray] | np.ndarray, like: Any) -> Any:
        """Per-column results shaped like ``like``: a table of the model's columns, or an array."""
        if self.schema_ is None or not isinstance(columns, dict):
            return columns
        return as_output(columns, like, self.schema_)

    def inverse_transform(self, X: Any) -> Any:
        """Decode codes (n_samples, n_components) back to the caller's units and sample shape.

        A model fitted on a table with names or categorical columns gives a table of its columns (a pandas
        DataFrame when pandas is installed, else an Arrow table), categories as their most likely level.
        """
        state = self._state()
        state.check_decoder("decode")
        spatial = state.spatial
        z = check_array(as_input(X, "codes"), dtype=np.float32, ensure_all_finite=False, allow_nd=spatial)
        check_finite(z, "codes")
        map_rank = 3 if self.window is not None else 4  # a code map over time (conv1d) or over the image
        if z.shape[1] != self.n_components or (spatial and z.ndim != map_rank):
            want = "(n, n_components, length)" if map_rank == 3 else "(n, n_components, height, width)"
            want = want if spatial else "(n, n_components)"
            raise DataError(
                f"codes have shape {z.shape}, but this model's codes are {want} with n_components={self.n_components}"
            )
        wide = state.decode(z)
        return self._as_table(wide if self.schema_ is None else self.schema_.decode(wide), None)

    def reconstruct(self, X: Any) -> Any:
        """Encode then decode ``X``: its reconstruction in the caller's units and shape.

        For a table: the same kind of table as ``X`` (a DataFrame for a DataFrame, an Arrow table for an
        Arrow table, an array for an array) with the model's columns, categories as their most likely level.
        """
        if self.window is not None:  # a series: (n_timestamps, n_channels), the mean over covering windows
            state = self._state()
            return reconstruct_series(state, windows_of(state, X))
        wide = self._decoded(self.transform(X))
        if self._state().spatial:  # the decoder covers the input padded to its stride: cut back to X's shape
            shape = as_input(X).shape
            return wide[..., : shape[-2], : shape[-1]].reshape(shape)
        return self._as_table(wide if self.schema_ is None else self.schema_.decode(wide), X)

    def impute(self, X: Any) -> Any:
        """``X`` with every missing cell (NaN, None, an empty text) filled from the model.

        The row is encoded with its missing cells marked as such and decoded: a numeric cell gets the
        reconstruction, a categorical cell its most likely level; observed cells are kept as given.

        Parameters
        ----------
        X : table of shape (n_samples, n_columns)
            A DataFrame, an Arrow table or a 2-D array with the model's columns.

        Returns
        -------
        The same kind of table as ``X``, with the model's columns in its order.
        """
        self._check_fitted()
        if self.schema_ is None:
            raise DataError("impute fills the cells of a table; this model was fitted on images or streamed rows")
        X = X if is_table(X) else as_input(X)
        columns = self.schema_.align(X)
        wide = self._decoded(self.transform(X))
        return self._as_table(self.schema_.fill(columns, wide), X)

    def reconstruction_error(self, X: Any, *, per_feature: bool = False) -> Any:
        """Reconstruction errors of ``X`` in the caller's units.

        Squared errors of numeric values; for a table's categorical column, the cross-entropy in nats of
        the given level under the model's softmax (``-log p``). Missing cells have no error (NaN per
        feature, left out of the sums).

        Parameters
        ----------
        X : array-like of shape (n_samples, *sample shape), or a table
        per_feature : bool, default=False
            Give every feature's (pixel's, column's) error instead of their sum per sample: it shows
            which features made a row anomalous.

        Returns
        -------
        ndarray of shape (n_samples,), or with ``per_feature=True`` (n_samples, *sample shape) or, for a
        table, the same kind of table as ``X`` with one column per column of the model
            The per-feature errors sum to the per-sample ones.
        """
        if self.window is not None:  # per timestamp (and channel) of the series
            errors = np.square(self.reconstruct(X) - as_series(X).values)  # (n_timestamps, n_channels)
            return errors if per_feature else errors.sum(axis=1)
        x = self._validate(X, reset=False)
        if self.schema_ is None:
            recon = self.reconstruct(X)  # X as given
            errors = np.square(recon.reshape(len(x), -1) - x.reshape(len(x), -1))  # (n_samples, n_features)
            return errors.reshape(x.shape) if per_feature else np.nansum(errors, axis=1)
        wide = self._decoded(self.transform(X))  # X as given: a table's columns are matched by name
        by_column = self.schema_.errors(wide, x)
        if per_feature:
            return self._as_table(by_column, X)
        return np.nansum(np.column_stack(list(by_column.values())), axis=1)

    # ------------------------------------------------------------------ anomaly detection

    def score_samples(self, X: Any) -> np.ndarray:
        """How normal each row of ``X`` is: higher for normal rows, as scikit-learn's outlier detectors.

        A series model (``window=W``) scores each window, then gives each timestamp the mean score of the
        windows that cover it (``isthmus.series``): shape (n_timestamps,), the first ``W - 1`` timestamps
        included.

        Parameters
        ----------
        X : array-like of shape (n_samples, *sample shape), or a series for a series model

        Returns
        -------
        ndarray of shape (n_samples,)
            float64, by ``anomaly_score``: minus the sum of squared reconstruction errors after the
            fitted scaler (``"reconstruction"``), or the ELBO or log-likelihood estimate in nats. The
            Monte-Carlo scores use a fixed seed, so equal calls give equal scores.
        """
        state = self._state()
        if self.window is not None:  # a series: window scores, then one score per timestamp
            return score_series(state, windows_of(state, X), self.anomaly_score)
        return scoring.score_samples(state, state.scale(self._validate(X, reset=False)), self.anomaly_score)

    def score_contributions(self, X: Any) -> Any:
        """What each column (value, pixel) of each row adds to the row's anomaly score, higher = more anomalous.

        Each row's contributions add up to ``-score_samples(X)`` of that row (missing cells contribute
        nothing); sorting a row's contributions names the columns that made it anomalous (``isthmus score
        --explain K``). Needs ``anomaly_score`` "reconstruction" or "reconstruction_l4".

        Returns
        -------
        For a table, the same kind of table as ``X`` with one column per column of the model (NaN for a
        missing cell); else an ndarray of shape (n_samples, *sample shape).
        """
        state = self._state()
        x = self._validate(X, reset=False)
        parts = scoring.contributions(state, state.scale(x), self.anomaly_score)
        if self.schema_ is None:  # a fully convolutional model's images keep their own size
            return parts.reshape(len(parts), *(x.shape[1:] if state.spatial else self.input_shape_))
        return self._as_table(dict(zip(self.schema_.names, parts.T, strict=True)), X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``, shape (n_samples,): negative for anomalies."""
        threshold = scoring.offset(self._state())  # before the scores, which may take long
        return self.score_samples(X) - threshold

    def predict(self, X: Any) -> np.ndarray:
        """+1 for normal rows and -1 for anomalies (``decision_function(X) < 0``), shape (n_samples,)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, **fit_params).predict(X)``: flags about ``contamination`` of the training rows."""
        return self.fit(X, **fit_params).predict(X)

    # ------------------------------------------------------------------ denoising and generating

    def denoise(self, X: Any) -> np.ndarray:
        """Clean ``X``: its reconstruction, in the caller's units and shape.

        A model trained with a ``corruption`` learned to map corrupted inputs to the clean ones (the
        noise is applied in training only), so denoising is exactly ``reconstruct``; use it on data
        corrupted like the training noise. A model trained without corruption warns: its reconstruction
        was never taught to remove noise.
        """
        self._check_fitted()
        if self.corruption == "none":
            warnings.warn(
                "this model was trained without corruption (corruption='none'), so denoise is its plain "
                "reconstruction, never taught to remove noise; train with corruption='gaussian' (the preset "
                "'denoising') and a noise_level like the data's noise",
                UserWarning,
                stacklevel=2,
            )
        return self.reconstruct(X)

    def sample(self, n_samples: int = 1, *, random_state: int | np.random.RandomState | None = None) -> np.ndarray:
        """Draw new data from a variational model: decoder means at codes drawn from N(0, I).

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState or None
            Seeds the codes drawn.

        Returns
        -------
        ndarray of shape (n_samples, *sample shape)
            In the caller's units: the expected value of p(x|z) for each code z (pixel intensities
            for a Bernoulli model), not a noisy draw from it.
        """
        return generative.draw(self._state(), n_samples, random_state)

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> np.ndarray:
        """Decode ``steps`` codes evenly spaced on the line from the code of ``a`` to the code of ``b``.

        Parameters
        ----------
        a, b : array-like
            One sample each (the sample shape), or equally many samples (n_samples, *sample shape).
        steps : int, default=8
            Points on the line, both ends included (at least 2).

        Returns
        -------
        ndarray of shape (steps, *sample shape), or (n_samples, steps, *sample shape) for batches
            In the caller's units; the first step decodes ``a``'s code and the last ``b``'s.
        """
        state = self._state()
        state.check_decoder("interpolate")
        generative.check_steps(steps)
        single = np.ndim(a) == len(self.input_shape_)
        xa, xb = (np.asarray(v)[None] if single else v for v in (a, b))
        sa, sb = self._scaled(xa), self._scaled(xb)
        if sa.shape != sb.shape:  # equally many, and for a fully convolutional model of one size
            raise DataError(f"a has shape {np.shape(xa)} and b {np.shape(xb)}; pass equally many samples of one shape")
        out = generative.interpolate_scaled(state, sa, sb, int(steps), np.shape(xa)[1:])
        return out[0] if single else out

    def log_likelihood(
        self, X: Any, *, n_importance: int = 100, random_state: int | np.random.RandomState | None = None
    ) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per sample, in nats (Burda et al., 2016).

        Parameters
        ----------
        X : array-like of shape (n_samples, *sample shape)
        n_importance : int, default=100
            Posterior samples per data sample: 1 gives the ELBO; the estimate rises toward log p(x)
            as it grows (5,000 is the usual benchmark setting).
        random_state : int, RandomState or None

        Returns
        -------
        ndarray of shape (n_samples,)
            float64 nats. For continuous likelihoods (``loss`` "mse" or "gaussian") it is the density of
            ``X`` in the caller's units (the scaler's log-Jacobian included); for the Bernoulli
            likelihood ("bce") it is the probability of the binary values, scaled as in training.
        """
        state = self._state()
        generative.check_likelihood(state)
        scaled = state.scale(self._validate(X, reset=False))
        return generative.log_likelihood_of(state, scaled, n_importance, random_state)

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    # ------------------------------------------------------------------ compressing

    def compress(self, X: Any, *, lossless: bool = False, search: int = 0, lmbda: float | None = None) -> bytes:
        """Entropy-code ``X`` into a bitstream (docs/format.md, section 4); needs ``bottleneck="quantized"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, *sample shape) or (*sample shape)
            Samples like the training data, in the caller's units and any numeric dtype; the dtype
            and the shape are stored, and ``decompress`` gives them back. A fully convolutional model
            takes images of any height and width, or a list of arrays of images of different sizes.
        lossless : bool, default=False
            Also code every value exactly, given the code's reconstruction, so that ``decompress`` gives
            ``X`` back bit for bit. Needs ``uint8`` data and a model fitted on 8-bit data.
        search : int, default=0
            Rate-distortion optimized encoding (:mod:`isthmus.rdo`): gradient steps on each sample's
            code, then up to this many greedy sweeps that move code values by +-1, all while that lowers
            the reconstruction loss plus ``lmbda`` times the real bits. Smaller files at the same quality
            for more encoding time (about 0.3 s per image alone, 30 ms per image in batches, on one
            CPU thread; 3 is plenty); the stream decodes as any other. It never loses: a searched stream
            larger than plain rounding's without a smaller squared error is replaced by plain rounding's.
        lmbda : float, optional
            The search's price of a bit in units of the reconstruction loss; default: the ``lmbda`` the
            model was trained with. Larger values give smaller files of lower quality.

        Returns
        -------
        bytes
            The stream: header, entropy-coded integer code, checksum.
        """
        return codec.compress(self._state(), X, lossless=lossless, search=search, lmbda=lmbda)

    def decompress(self, data: bytes) -> Any:
        """Decode a bitstream written by ``compress`` with this model into an array like the compressed one
        (ndarray), or, for a list of images of their own sizes given to a fully convolutional model's
        ``compress``, into a list of arrays.

        Raises
        ------
        isthmus.codec.BitstreamError
            If ``data`` is not a complete, intact stream of this model (each case its own subclass:
            wrong model, truncated, corrupt, newer format version).
        """
        return codec.decompress(self._state(), data)

    def fit_pixel_model(self, X: Any, **options: Any) -> Autoencoder:
        """Build the pixel model afresh on 8-bit training data ``X``, as ``fit`` does at its end; returns ``self``.

        The kind is ``pixel_model`` (``set_params(pixel_model="net")`` first to give a model a pixel
        network); ``options`` go to :func:`isthmus.pixelnet.train_pixel_net` (``steps``, ``max_pixels``, ...).

        For a model fitted before the pixel model existed (its file holds the 256 tables ``lossless.*``),
        or to count on other data. The tables are part of the model's fingerprint, so the model gets a new
        one: streams written before (lossy ones too) decode only with the model as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, *input shape)
            Integers 0..255, like the model's training data; needs a fitted model with
            ``bottleneck="quantized"`` and a decoder.
        """
        self._set_fitted(fitting.refit_pixel_model(self._state(), X, **options))
        return self

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        """Write the whole model (weights, scaler, config, provenance) to one ``.safetensors`` file."""
        artifact.save(self._state(), path, overwrite=overwrite)

    def export_encoder(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        """Write the encoder alone: ``load`` of that file can ``transform`` but not decode."""
        artifact.save(self._state(), path, encoder_only=True, overwrite=overwrite)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean reconstruction error of ``X``: higher is better, so model selection works unsupervised.

        Parameters
        ----------
        X : array-like of shape (n_samples, *sample shape)
        y : ignored

        Returns
        -------
        float
            ``-reconstruction_error(X).mean()``, the mean per-sample sum of squared errors in the caller's
            units, negated (as scikit-learn's scorers are); ``GridSearchCV`` uses it when given no scorer.
        """
        return -float(self.reconstruction_error(X).mean())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = True  # missing cells of a table (infinity is still refused)
        # every output is float32 whatever the input dtype: the network computes in float32
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


# each ``name : {...}`` above becomes the names its table holds, so the tables are the one list of choices
Autoencoder.__doc__ = document_choices(Autoencoder.__doc__ or "")
