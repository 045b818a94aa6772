#!/usr/bin/python3
"""Independent cross-check of the hand-marked eye centres: Daugman-style integro-differential iris search
(lateral arcs only, +-45 deg about horizontal, so eyelids do not bias it) on the aligned crop.
Search window: +-4 crop px around the dlib eye centre; radius 2.6..3.8 crop px. Prints the fit vs hand vs dlib."""
import json, csv, numpy as np
from scipy.ndimage import map_coordinates, gaussian_filter
from skimage.io import imread
from analyze import ids, faces, H, apply, inv, NAMES
res = []
cache = {}
for i in ids:
    f = faces[i]; M = np.array(f['M'])
    if f['image'] not in cache:
        im = imread(f['image']).astype(float)
        g = im[..., :3] @ [0.299, 0.587, 0.114] if im.ndim == 3 else im
        cache[f['image']] = g
    g = cache[f['image']]; Mi = inv(M)
    s = np.linalg.norm(Mi[:, 0])            # image px per crop px
    gs = gaussian_filter(g, 0.6 * s)
    dl = apply(M, np.array(f['five']))
    for e in (0, 1):
        c0 = dl[e]; best = (-1e9, None)
        th = np.concatenate([np.linspace(-np.pi / 4, np.pi / 4, 24), np.pi + np.linspace(-np.pi / 4, np.pi / 4, 24)])
        for r in np.arange(2.6, 3.81, 0.2):
            for dy in np.arange(-4, 4.01, 0.25):
                for dx in np.arange(-4, 4.01, 0.25):
                    c = c0 + [dx, dy]
                    def ring(rr):
                        p = np.stack([c[0] + rr * np.cos(th), c[1] + rr * np.sin(th)], 1)
                        q = apply(Mi, p); return map_coordinates(gs, [q[:, 1], q[:, 0]], order=1).mean()
                    sc = ring(r + 0.5) - ring(r - 0.5)
                    if sc > best[0]: best = (sc, c, r)
        h = np.array(H[i][NAMES[e]])
        res.append((i, e, best[1], best[2], h, dl[e]))
        print(f"{i:26s} {NAMES[e]} iris=({best[1][0]:.1f},{best[1][1]:.1f}) r={best[2]:.1f}  hand=({h[0]:.1f},{h[1]:.1f})  dlib=({dl[e][0]:.1f},{dl[e][1]:.1f})")
A = np.array([r[2] for r in res]); Hh = np.array([r[4] for r in res]); Dd = np.array([r[5] for r in res])
d = A - Hh; dd = Dd - A
print(f"\niris-fit minus hand: mean ({d[:,0].mean():+.2f},{d[:,1].mean():+.2f})  median ({np.median(d[:,0]):+.2f},{np.median(d[:,1]):+.2f})  std ({d[:,0].std():.2f},{d[:,1].std():.2f})")
print(f"dlib minus iris-fit: mean ({dd[:,0].mean():+.2f},{dd[:,1].mean():+.2f})  median ({np.median(dd[:,0]):+.2f},{np.median(dd[:,1]):+.2f})  same sign dy {max((dd[:,1]>0).mean(), (dd[:,1]<0).mean()):.0%}")
good = np.linalg.norm(d, axis=1) < 1.5
print(f"iris fit within 1.5 px of hand: {good.sum()}/{len(d)}; on those, dlib minus iris-fit dy mean {dd[good,1].mean():+.2f}")
