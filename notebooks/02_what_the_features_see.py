# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. What the features see
#
# **What you will see.** On colorectal H&E tiles (Kather et al. 2016, 8 tissue classes from 6 slides):
#
# 1. **LBP**: the code image of a tile and the histogram that becomes its feature vector;
# 2. **GIST**: the Gabor filter bank in the Fourier domain and a tile's energy map per scale;
# 3. **CNN activations**: a few channels of a shallow, a middle and a deep layer of the frozen
#    EfficientNet-Lite0;
# 4. **2-D embeddings** of each layer (PCA and t-SNE) coloured by tissue class *and* by slide, with a
#    number that says where the slide (stain, scanner, patient) signal lives;
# 5. **saliency**: the gradient of a scikit-learn logistic regression's score through the frozen CNN to
#    the pixels (the figure of Esteva et al. 2017), and **occlusion maps**, which work for any classifier.
#
# **Honest numbers.** The maps are illustrations, not evaluations; the one model trained here is fitted
# on the tiles it is shown on, and says so. The nearest-neighbour rates count tiles (the unit) from 6
# slides, so they describe this sample, not a population. `FULL = False` uses up to 4 tiles per class and
# slide. Data: Kather et al., *Sci Rep* 2016, CC BY 4.0.

# %%
FULL = False  # True: all 480 tiles; False: up to 4 tiles per (class, slide), about 120

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medfeat.datasets import fetch_kather2016
from medfeat.features import DeepFeatures, gabor_transfer_functions, gist_descriptor, lbp_codes, lbp_histogram
from medfeat.inspect import (
    embed_2d,
    layer_activations,
    occlusion_map,
    plot_channels,
    plot_embedding,
    plot_overlay,
    saliency,
)

t_start = time.perf_counter()
data = fetch_kather2016(progress=False)  # checked download (or $MEDFEAT_DATA); groups = source_slide
frame = pd.DataFrame({"label": data.labels, "slide": data.groups})
if FULL:
    keep = np.arange(len(frame))
else:
    keep = np.sort(frame.groupby(["label", "slide"]).head(4).index.to_numpy())
X, labels, slides = data.images[keep], data.labels[keep], data.groups[keep]
print(X.shape, "tiles;", pd.crosstab(labels, slides).to_string())

# %%
fig, axes = plt.subplots(1, 8, figsize=(14, 2.2))
for ax, cls in zip(axes, data.classes):
    ax.imshow(X[np.flatnonzero(labels == cls)[0]])
    ax.set_title(cls, fontsize=8)
    ax.axis("off")

# %% [markdown]
# ## LBP: a code per pixel, a histogram per tile
# Each pixel is compared with 8 neighbours on a circle of radius 1; rotation-invariant *uniform* codes
# 0-8 count the neighbours brighter than the centre along one arc (edges, corners, spots), code 9 collects
# the non-uniform rest. The feature vector is the histogram of the codes.

# %%
tumour, stroma = (X[np.flatnonzero(labels == c)[0]] for c in ("01_TUMOR", "02_STROMA"))
fig, axes = plt.subplots(2, 3, figsize=(10, 6))
for row, (name, tile) in zip(axes, (("tumour", tumour), ("stroma", stroma))):
    row[0].imshow(tile)
    row[0].set_title(name, fontsize=9)
    im = row[1].imshow(lbp_codes(tile, P=8, R=1), cmap="tab10", vmin=-0.5, vmax=9.5)
    row[1].set_title("LBP codes (P=8, R=1)", fontsize=9)
    row[2].bar(range(10), lbp_histogram(tile, radii_points=[(8, 1)]))
    row[2].set_title("histogram = feature vector", fontsize=9)
    row[2].set_xlabel("code")
    for ax in row[:2]:
        ax.axis("off")
fig.colorbar(im, ax=axes[:, 1], fraction=0.04)

# %% [markdown]
# ## GIST: a bank of Gabor filters, energy averaged over a 4 x 4 grid
# Left: the 32 filters (4 scales x 8 orientations) in the Fourier domain, summed (centre = low frequencies).
# Right: the tile's descriptor rearranged as a 4 x 4 energy map per scale (summed over orientations).

# %%
bank = np.fft.fftshift(gabor_transfer_functions((8, 8, 8, 8), n=192).sum(0))
g = gist_descriptor(tumour).reshape(4, 8, 4, 4)  # scale, orientation, column block, row block
fig, axes = plt.subplots(1, 6, figsize=(14, 2.6))
axes[0].imshow(bank, cmap="magma")
axes[0].set_title("filter bank (Fourier)", fontsize=9)
axes[1].imshow(tumour)
axes[1].set_title("tile", fontsize=9)
for s in range(4):
    axes[2 + s].imshow(g[s].sum(0).T, cmap="viridis")  # transpose: rows, columns
    axes[2 + s].set_title(f"scale {s} ({'fine' if s == 0 else 'coarse' if s == 3 else 'mid'})", fontsize=9)
for ax in axes:
    ax.axis("off")

# %% [markdown]
# ## Inside the frozen CNN
# `layer_activations` returns the unpooled maps. Shallow layers respond to colour and edges at full detail;
# deep layers to larger patterns at coarse resolution. Shown: the 5 most active channels per layer.

# %%
deep = DeepFeatures(layers=["blocks.1", "blocks.3", "blocks.5", "bn2"], input_size=None)
maps = layer_activations(tumour, deep)
for name, act in maps.items():
    if name != "bn2":
        plot_channels(act[0], axes=plt.subplots(1, 5, figsize=(9, 1.9))[1], title=f"{name}: {act.shape[1:]} (C, h, w)")

# %% [markdown]
# ## Where does the slide signal live? Embeddings per layer
# Pooled features of every tile, embedded in 2-D by PCA. Top: coloured by tissue class; bottom: by slide.
# Then a number: for each tile, is its nearest neighbour (all features, standardised) of the same class,
# and is it from the same slide? Chance is the fraction of other tiles sharing the class or the slide.

# %%
t = time.perf_counter()
F = deep.fit(X).transform(X)
print(f"{len(X)} tiles -> {F.shape[1]} features in {time.perf_counter() - t:.1f} s")
parts, start = {}, 0
for name, dim in deep.layer_dims_.items():
    parts[name] = F[:, start:start + dim]
    start += dim

fig, axes = plt.subplots(2, 4, figsize=(15, 7))
for j, (name, Z) in enumerate(parts.items()):
    emb = embed_2d(Z, "pca")
    plot_embedding(emb, labels, axes[0, j], title=f"{name} by class")
    plot_embedding(emb, slides, axes[1, j], title=f"{name} by slide")
for ax in axes[:, :3].ravel():
    ax.get_legend().remove() if ax.get_legend() else None
fig.tight_layout()

# %%
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler


def same_neighbour(Z, values):
    Z = StandardScaler().fit_transform(Z)
    nn = NearestNeighbors(n_neighbors=2).fit(Z).kneighbors(Z, return_distance=False)[:, 1]
    return float(np.mean(values[nn] == values))


def chance(values):
    counts = pd.Series(values).value_counts()
    return float(((counts * (counts - 1)).sum()) / (len(values) * (len(values) - 1)))


rates = pd.DataFrame({name: {"same class": same_neighbour(Z, labels), "same slide": same_neighbour(Z, slides)}
                      for name, Z in parts.items()}).T
rates["same class (chance)"] = chance(labels)
rates["same slide (chance)"] = chance(slides)
rates.round(3)

# %% [markdown]
# Both rates lie far above chance in every layer: the features carry the slide as well as the tissue. A
# classifier can therefore learn "which slide" as a shortcut for "which class" whenever classes and slides
# are entangled in the training data; notebook 4 measures what that costs on unseen slides.
#
# t-SNE keeps neighbourhoods (not distances or cluster sizes) and often shows the split more sharply:

# %%
emb = embed_2d(parts["blocks.5"], "tsne", random_state=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plot_embedding(emb, labels, axes[0], title="blocks.5, t-SNE, by class")
plot_embedding(emb, slides, axes[1], title="blocks.5, t-SNE, by slide")

# %% [markdown]
# ## Saliency: a scikit-learn head, differentiated through the frozen CNN
# A logistic regression on the pooled `blocks.5` features separates tumour from stroma. Its decision value
# is a linear function of the features, which are a differentiable function of the pixels, so the gradient
# of the score with respect to every pixel can be computed through the frozen network. The model is fitted
# on the tiles shown (an illustration, not an evaluation).

# %%
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

two = np.isin(labels, ["01_TUMOR", "02_STROMA"])
model = make_pipeline(DeepFeatures(layers="blocks.5", input_size=None), StandardScaler(),
                      LogisticRegression(C=0.1, max_iter=1000)).fit(X[two], labels[two] == "01_TUMOR")
shown = np.r_[np.flatnonzero(labels == "01_TUMOR")[:2], np.flatnonzero(labels == "02_STROMA")[:1]]
sal = saliency(model, X[shown])  # |d score / d pixel|, max over colour channels
fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
for j, i in enumerate(shown):
    axes[0, j].imshow(X[i])
    axes[0, j].set_title(f"{labels[i]} ({slides[i]})", fontsize=8)
    axes[0, j].axis("off")
    plot_overlay(X[i], sal[j], axes[1, j], title="saliency of the tumour score", colorbar=False)

# %% [markdown]
# ## Occlusion: works for any classifier
# Cover a 50 px square (a third of the tile) with the tile's mean colour and record how much the tumour score drops. Here for
# the same deep model and for a handcrafted colour + LBP model with an RBF SVM, which has no gradient.

# %%
from sklearn.pipeline import make_union

from medfeat.classifiers import make_classifier
from medfeat.features import ColorFeatures, LBPHistogram

hand = make_pipeline(make_union(ColorFeatures(), LBPHistogram()), make_classifier("rbf_svm"))
hand.fit(X[two], labels[two] == "01_TUMOR")
fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
for j, i in enumerate(shown):
    for row, (name, m) in enumerate((("deep + logreg", model), ("handcrafted + RBF SVM", hand))):
        occ = occlusion_map(m, X[i], window=50, stride=25)
        plot_overlay(X[i], occ, axes[row, j], cmap="coolwarm", symmetric=True, colorbar=False,
                     title=f"{name}: score drop", alpha=0.6)

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s wall, {time.process_time():.0f} s CPU "
      f"(kernel process, all threads; FULL = {FULL})")

# %% [markdown]
# ## Exercises
# 1. Which LBP codes differ most between tumour and stroma? Try `P=16, R=2`.
# 2. Change the GIST scale you look at: which scale separates lymphocytes from debris?
# 3. Embed with `method="umap"` (`pip install umap-learn`). Does the slide signal look different?
# 4. Train the saliency model on `bn2` instead of `blocks.5`: do the maps get coarser?
# 5. Occlude with `baseline=255` (white, like empty glass) instead of the mean colour. What changes, and why
#    is the mean colour usually the safer choice?
# 6. Compute the same-slide rate on stain-normalised tiles (see notebook 4) and compare.
