"""The README's picture: held-out digits beside their reconstructions by isthmus and by PCA.

.venv/bin/python bench/figure_digits.py --out docs/digits.png
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from _common import parser, report
from isthmus import Autoencoder, evaluate
from isthmus.metrics import pca_reconstruct


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(out=Path("docs/digits.png"))
    args = p.parse_args()
    images = load_digits().images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), 0..16
    train, test = images[:1500], images[1500:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae = Autoencoder(
            n_components=8,
            hidden_layer_sizes=(256, 128),
            max_iter=200,
            random_state=0,
            early_stopping=True,
            n_iter_no_change=20,
            verbose=0,
        ).fit(train)
    shown = test[:12]
    rows = {
        "held-out digits": shown,
        "isthmus, 8-d code": ae.reconstruct(shown),
        "PCA, 8 components": pca_reconstruct(ae, shown).reshape(shown.shape),
    }
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(len(shown) * 0.8, len(rows) * 0.95))
    for r, (label, batch) in enumerate(rows.items()):
        for c in range(len(shown)):
            ax = axes[r, c]
            ax.imshow(batch[c, 0], cmap="gray_r", vmin=0, vmax=16)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    result = evaluate(ae, test)
    a, b = result["autoencoder"], result["pca"]
    report(
        {"figure": str(args.out), "autoencoder": a, "pca": b},
        {
            "what": "held-out digits, 8-d code, SSE per image (pixels 0..16)",
            "figure": f"{a['sse_per_sample']:.1f}",
            "baseline": f"PCA-8: {b['sse_per_sample']:.1f}",
        },
        args,
    )


if __name__ == "__main__":
    main()
