"""A straightforward, per-image NumPy port of LabelMe's LMgist (test reference and benchmark baseline).

Written line by line after LMgist.m / createGabor.m / imresizecrop.m, with none of medfeat's
speed-ups: one image at a time, float64, complex FFTs with ``numpy.fft``, one inverse FFT per
filter over the whole padded image, explicit loops for ``imresize`` weights and ``downN``.
It is not part of the package: tests compare ``medfeat.features.gist`` with it and the benchmark
measures how much faster the package is.
"""

import numpy as np


def create_gabor(orientations_per_scale, n):
    """createGabor: list of (n, n) transfer functions."""
    params = []
    for i, n_or in enumerate(orientations_per_scale, start=1):
        for j in range(1, n_or + 1):
            params.append((0.35, 0.3 / (1.85 ** (i - 1)), 16 * n_or**2 / 32**2, np.pi / n_or * (j - 1)))
    fx, fy = np.meshgrid(np.arange(-n / 2, n / 2), np.arange(-n / 2, n / 2))
    fr = np.fft.fftshift(np.sqrt(fx**2 + fy**2))
    t = np.fft.fftshift(np.angle(fx + 1j * fy))
    bank = []
    for p1, p2, p3, p4 in params:
        tr = t + p4
        tr = tr + 2 * np.pi * (tr < -np.pi) - 2 * np.pi * (tr > np.pi)
        bank.append(np.exp(-10 * p1 * (fr / n / p2 - 1) ** 2 - 2 * p3 * np.pi * tr**2))
    return bank


def imresize_bilinear_1d(x, out_len, axis):
    """MATLAB imresize 'bilinear' (antialiased when shrinking) along one axis, explicit loops."""
    x = np.moveaxis(x, axis, 0)
    in_len = x.shape[0]
    scale = out_len / in_len
    width = 2.0 / scale if scale < 1 else 2.0
    out = np.zeros((out_len,) + x.shape[1:])
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = int(np.floor(u - width / 2))
        weights, indices = [], []
        for k in range(left, left + int(np.ceil(width)) + 2):
            d = u - k
            if scale < 1:
                wk = scale * max(0.0, 1 - abs(scale * d))
            else:
                wk = max(0.0, 1 - abs(d))
            # mirror the index into 1..in_len (MATLAB's symmetric boundary)
            kk = (k - 1) % (2 * in_len)
            kk = kk + 1 if kk < in_len else 2 * in_len - kk
            weights.append(wk)
            indices.append(kk - 1)
        total = sum(weights)
        for wk, kk in zip(weights, indices):
            out[i - 1] += wk / total * x[kk]
    return np.moveaxis(out, 0, axis)


def imresizecrop(img, m):
    h, w = img.shape[:2]
    scaling = max(m / h, m / w)
    nr, nc = int(np.floor(h * scaling + 0.5)), int(np.floor(w * scaling + 0.5))
    if nr != h:
        img = imresize_bilinear_1d(img, nr, 0)
    if nc != w:
        img = imresize_bilinear_1d(img, nc, 1)
    sr, sc = (nr - m) // 2, (nc - m) // 2
    return img[sr : sr + m, sc : sc + m]


def prefilt(img, fc=4):
    w = 5
    s1 = fc / np.sqrt(np.log(2))
    img = np.log(img + 1)
    img = np.pad(img, w, mode="symmetric")
    sn, sm = img.shape
    n = max(sn, sm)
    n = n + n % 2
    img = np.pad(img, ((0, n - sn), (0, n - sm)), mode="symmetric")
    fx, fy = np.meshgrid(np.arange(-n / 2, n / 2), np.arange(-n / 2, n / 2))
    gf = np.fft.fftshift(np.exp(-(fx**2 + fy**2) / s1**2))
    output = img - np.real(np.fft.ifft2(np.fft.fft2(img) * gf))
    localstd = np.sqrt(np.abs(np.fft.ifft2(np.fft.fft2(output**2) * gf)))
    output = output / (0.2 + localstd)
    return output[w : sn - w, w : sm - w]


def down_n(x, n):
    edges_r = np.fix(np.linspace(0, x.shape[0], n + 1)).astype(int)
    edges_c = np.fix(np.linspace(0, x.shape[1], n + 1)).astype(int)
    y = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            y[i, j] = x[edges_r[i] : edges_r[i + 1], edges_c[j] : edges_c[j + 1]].mean()
    return y


def lmgist(image, image_size=128, orientations_per_scale=(8, 8, 8, 8), n_blocks=4, fc_prefilt=4, be=32, bank=None):
    """GIST of one grey or RGB uint8 image, as LMgist computes it (float64 throughout)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img.mean(axis=2)
    img = imresizecrop(img, image_size)
    img = img - img.min()
    img = 255 * img / img.max()
    out = prefilt(img, fc_prefilt)
    if bank is None:
        bank = create_gabor(orientations_per_scale, image_size + 2 * be)
    padded = np.fft.fft2(np.pad(out, be, mode="symmetric"))
    n = padded.shape[0]
    g = []
    for G in bank:
        ig = np.abs(np.fft.ifft2(padded * G))
        ig = ig[be : n - be, be : n - be]
        g.append(down_n(ig, n_blocks).ravel(order="F"))
    return np.concatenate(g)
