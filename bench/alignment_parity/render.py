#!/usr/bin/python3
"""Render per-face zoomed views in 112x112 crop coordinates for hand marking.
Axes are crop coordinates (pixel centres at integers). Overview shows dlib five points (red x);
detail panels (no dlib marks, to limit anchoring) have a 1-px grid with labels every 2 px.
Optional: hand.csv marks are drawn (green +) when --check is given, with the dlib point (red x) and the
proposed eye reduction (blue dot, k_eye=0.25) in the detail panels."""
import json, sys, csv, numpy as np, matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from scipy.ndimage import map_coordinates
from skimage.io import imread
T = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
NAMES = ['leye', 'reye', 'nose', 'lmouth', 'rmouth']
check = '--check' in sys.argv
ids = [a for a in sys.argv[1:] if not a.startswith('--')]
faces = json.load(open('faces.json'))
hand = {}
if check:
    for r in csv.DictReader(open('hand.csv')):
        hand.setdefault(r['face'], {})[r['point']] = (float(r['x']), float(r['y']))
cache = {}

def sample(img, M, x0, y0, w, h, z):
    A = np.vstack([np.array(M), [0, 0, 1]]); Ai = np.linalg.inv(A)
    u = x0 + np.arange(int(w * z)) / z; v = y0 + np.arange(int(h * z)) / z
    U, V = np.meshgrid(u, v)
    X = Ai[0, 0] * U + Ai[0, 1] * V + Ai[0, 2]; Y = Ai[1, 0] * U + Ai[1, 1] * V + Ai[1, 2]
    out = np.stack([map_coordinates(img[..., c].astype(float), [Y, X], order=3, mode='nearest') for c in range(3)], -1)
    return np.clip(out, 0, 255).astype(np.uint8)

def show(ax, img, x0, y0, w, h, z, step, lab):
    ax.imshow(img, extent=[x0 - .5 / z, x0 + w - .5 / z, y0 + h - .5 / z, y0 - .5 / z], interpolation='nearest')
    for g in np.arange(np.ceil(x0), x0 + w, step): ax.axvline(g, color='c' if g % lab else 'y', lw=.3, alpha=.6)
    for g in np.arange(np.ceil(y0), y0 + h, step): ax.axhline(g, color='c' if g % lab else 'y', lw=.3, alpha=.6)
    ax.set_xticks(np.arange(np.ceil(x0 / lab) * lab, x0 + w, lab)); ax.set_yticks(np.arange(np.ceil(y0 / lab) * lab, y0 + h, lab))
    ax.tick_params(labelsize=6); ax.set_xlim(x0 - .5 / z, x0 + w - .5 / z); ax.set_ylim(y0 + h - .5 / z, y0 - .5 / z)

for f in faces:
    if ids and f['id'] not in ids: continue
    if f['image'] not in cache:
        im = imread(f['image'])
        if im.ndim == 2: im = np.stack([im] * 3, -1)
        cache[f['image']] = im[..., :3]
    img, M = cache[f['image']], f['M']
    P = np.array(f['pts68']); KE = 0.25   # proposed eye reduction, drawn as blue dots in --check views
    EC = np.array([P[a:a + 6].mean(0) + KE * (P[[a + 1, a + 2]].mean(0) - P[[a + 4, a + 5]].mean(0)) for a in (36, 42)])
    EC = EC @ np.array(M)[:, :2].T + np.array(M)[:, 2]
    DL = np.array(f['five']) @ np.array(M)[:, :2].T + np.array(M)[:, 2]   # dlib five points in crop coords
    hf = hand.get(f['id'], {})
    import os; edy = float(os.environ.get('EYEDY', 0))
    wins = {'leye': (38, 51.5 + edy, 20, 14), 'reye': (73.5, 51.5 + edy, 20, 14), 'nose': (56, 70, 28, 26),
            'lmouth': (41.5, 92.3, 20, 16), 'rmouth': (70.7, 92.2, 20, 16)}
    figs = {'A': (plt.figure(figsize=(14, 5.4), dpi=100), {'leye': [.03, .06, .46, .86], 'reye': [.53, .06, .46, .86]}),
            'B': (plt.figure(figsize=(14, 5.6), dpi=100), {'nose': [.02, .04, .32, .9], 'lmouth': [.37, .06, .30, .86], 'rmouth': [.69, .06, .30, .86]})}
    fc = plt.figure(figsize=(6, 6), dpi=100); ax = fc.add_axes([.08, .06, .9, .88])
    show(ax, sample(img, M, 0, 0, 112, 112, 5), 0, 0, 112, 112, 5, 2, 10)
    ax.plot(DL[:, 0], DL[:, 1], 'rx', ms=5, mew=.8)
    for n, (x, y) in hf.items(): ax.plot(x, y, 'g+', ms=6, mew=.8)
    ax.set_title(f"{f['id']}  iod={f['iod']:.0f}px  (red x = dlib 5pt, green + = hand)", fontsize=8)
    fc.savefig(f"render/{'check_' if check else ''}{f['id']}_C.png"); plt.close(fc)
    for key, (fig, pos) in figs.items():
        for n, p in pos.items():
            cx, cy, w, h = wins[n]; a = fig.add_axes(p); z = 16 if n != 'nose' else 12
            x0, y0 = round(cx - w / 2), round(cy - h / 2)
            show(a, sample(img, M, x0, y0, w, h, z), x0, y0, w, h, z, 1, 2)
            if n in hf:
                x, y = hf[n]; a.plot(x, y, 'g+', ms=14, mew=1.2)
                i = NAMES.index(n); a.plot(DL[i, 0], DL[i, 1], 'rx', ms=10, mew=1.2)
                if i < 2: a.plot(EC[i, 0], EC[i, 1], 'b.', ms=9)
            a.set_title(f"{f['id']} {n}", fontsize=8)
        fig.savefig(f"render/{'check_' if check else ''}{f['id']}_{key}.png"); plt.close(fig)
