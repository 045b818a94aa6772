#!/usr/bin/python3
"""Residuals of qface's dlib five points vs hand-marked MTCNN-style points, in 112x112 crop px.
Everything is done in image coordinates: hand marks (made in the dlib crop frame) are mapped back to the
image; for each landmark reduction the Umeyama similarity is refit from that reduction's five points,
and both the reduction's points and the hand points are mapped into that crop.
usage: analyze.py [hand.csv] [--json out.json]"""
import json, csv, sys, numpy as np
from scipy.optimize import minimize
from prep import umeyama, T
NAMES = ['leye', 'reye', 'nose', 'lmouth', 'rmouth']
hand_file = next((a for a in sys.argv[1:] if a.endswith('.csv')), 'hand.csv')
faces = {f['id']: f for f in json.load(open('faces.json'))}
H = {}
for r in csv.DictReader(open(hand_file)):
    H.setdefault(r['face'], {})[r['point']] = (float(r['x']), float(r['y']))
ids = [i for i in faces if i in H and len(H[i]) == 5]

def apply(M, P): M = np.asarray(M); return P @ M[:, :2].T + M[:, 2]
def inv(M):
    A = np.vstack([np.asarray(M), [0, 0, 1]]); return np.linalg.inv(A)[:2]

D = []   # per face: P68 (image), hand (image)
for i in ids:
    f = faces[i]; P = np.array(f['pts68']); M = np.array(f['M'])
    h = apply(inv(M), np.array([H[i][n] for n in NAMES]))
    D.append((P, h))

EYE_MODE = 'lid'   # 'lid': shift along (mean(37,38) - mean(40,41)); 'normal': along the corner line's normal, in eye widths
def reduce(P, k):
    """five points from 68 with correction coefficients k = (k_eye, k_nose, k_mouth); k = 0 is qface's reduction.
    eye   = mean(36..41) + k_eye * (mean(37,38) - mean(40,41))      [image-left; 42..47, 43,44 / 46,47 for the other]
    nose  = P30 + k_nose * (P33 - P30)
    mouth = P48 + k_mouth * (P48 - P54),  P54 + k_mouth * (P54 - P48)"""
    ke, kn, km = k
    def eye(a):  # a = 36 or 42
        c = P[a:a + 6].mean(0)
        if EYE_MODE == 'lid': return c + ke * (P[[a + 1, a + 2]].mean(0) - P[[a + 4, a + 5]].mean(0))
        d = P[a + 3] - P[a]; return c + ke * np.array([d[1], -d[0]])   # "up" normal for a level face
    return np.array([eye(36), eye(42), P[30] + kn * (P[33] - P[30]),
                     P[48] + km * (P[48] - P[54]), P[54] + km * (P[54] - P[48])])

def residuals(k):
    R = []
    for P, h in D:
        five = reduce(P, k); M = umeyama(five, T)
        R.append(apply(M, five) - apply(M, h))
    return np.array(R)   # faces x 5 x 2, (reduction - hand) in that reduction's crop

def crop_shift(k):
    """mean displacement (crop px) over the 112x112 grid between the reduction's crop and the hand-aligned crop."""
    g = np.stack(np.meshgrid(np.arange(0, 112, 4), np.arange(0, 112, 4)), -1).reshape(-1, 2).astype(float)
    out = []
    for P, h in D:
        Md = umeyama(reduce(P, k), T); Mh = umeyama(h, T)
        out.append(np.linalg.norm(apply(Md, apply(inv(Mh), g)) - g, axis=1).mean())
    return np.array(out)

def table(R, title):
    lines = [f"### {title}", "", "| point | mean dx | mean dy | std dx | std dy | median dx | median dy | mean abs | max abs | same sign dx | same sign dy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for j, n in enumerate(NAMES):
        r = R[:, j]; a = np.linalg.norm(r, axis=1)
        sc = max((r[:, 1] > 0).mean(), (r[:, 1] < 0).mean()); sx = max((r[:, 0] > 0).mean(), (r[:, 0] < 0).mean())
        lines.append(f"| {n} | {r[:,0].mean():+.2f} | {r[:,1].mean():+.2f} | {r[:,0].std(ddof=1):.2f} | {r[:,1].std(ddof=1):.2f} | "
                     f"{np.median(r[:,0]):+.2f} | {np.median(r[:,1]):+.2f} | {a.mean():.2f} | {a.max():.2f} | {sx:.0%} | {sc:.0%} |")
    a = np.linalg.norm(R, axis=2)
    lines.append(f"| all | | | | | | | {a.mean():.2f} | {a.max():.2f} | | |")
    return "\n".join(lines)

if __name__ == '__main__':
    out = {'n_faces': len(ids), 'faces': ids}
    R0 = residuals((0, 0, 0))
    print(f"{len(ids)} faces from {hand_file}\n")
    print(table(R0, "current reduction (36-41 mean, 42-47 mean, 30, 48, 54): dlib minus hand, crop px"))
    print("\nper-face residuals (dx,dy) current:")
    for i, r in zip(ids, R0):
        print(f"  {i:26s} " + "  ".join(f"{n}=({x:+.1f},{y:+.1f})" for n, (x, y) in zip(NAMES, r)))
    print(f"\ncrop displacement vs hand-aligned crop (mean over 112x112 grid): mean {crop_shift((0,0,0)).mean():.2f} px, max {crop_shift((0,0,0)).max():.2f}")
    out['before'] = R0.tolist()
    if '--fit' in sys.argv:
        def fit(mask, x0=None):
            """least squares over all five points (similarity refit per face) for the coefficients in mask; others 0."""
            mask = np.array(mask, bool)
            def full(v): k = np.zeros(3); k[mask] = v; return k
            r = minimize(lambda v: (residuals(full(v)) ** 2).sum(), np.zeros(mask.sum()), method='Nelder-Mead',
                         options=dict(xatol=1e-4, fatol=1e-6))
            return full(r.x)
        variants = [('eye only', (1, 0, 0)), ('nose only', (0, 1, 0)), ('mouth only', (0, 0, 1)), ('eye + mouth', (1, 0, 1)),
                    ('eye + nose + mouth', (1, 1, 1))]
        fits = {}
        for name, mask in variants:
            k = fit(mask); fits[name] = k; R = residuals(k); cs = crop_shift(k)
            print("\n" + table(R, f"{name}: k_eye={k[0]:+.3f} k_nose={k[1]:+.3f} k_mouth={k[2]:+.3f}"))
            print(f"crop displacement vs hand-aligned crop: mean {cs.mean():.2f} px, max {cs.max():.2f}")
        best_mask = (1, 0, 1); best = fits['eye + mouth']
        keep = list(D); loo = []; ks = []
        for t in range(len(keep)):
            D[:] = keep[:t] + keep[t + 1:]
            kt = fit(best_mask); ks.append(kt)
            D[:] = [keep[t]]; loo.append(residuals(kt)[0])
        D[:] = keep
        ks = np.array(ks)
        print("\n" + table(np.array(loo), f"eye + mouth, leave-one-out (k refit without the face; k_eye {ks[:,0].min():+.3f}..{ks[:,0].max():+.3f}, k_mouth {ks[:,2].min():+.3f}..{ks[:,2].max():+.3f})"))
        out['fits'] = {n: k.tolist() for n, k in fits.items()}
    if '--k' in sys.argv:
        k = tuple(float(x) for x in sys.argv[sys.argv.index('--k') + 1].split(','))
        R = residuals(k); cs = crop_shift(k)
        print("\n" + table(R, f"given coefficients k_eye={k[0]:+.3f} k_nose={k[1]:+.3f} k_mouth={k[2]:+.3f}"))
        print(f"crop displacement vs hand-aligned crop: mean {cs.mean():.2f} px, max {cs.max():.2f}")
    if '--json' in sys.argv: json.dump(out, open(sys.argv[sys.argv.index('--json') + 1], 'w'), indent=1)
