#!/usr/bin/python3
"""Alignment parity per face detector: the five points that qface finds through the SSD (and HOG) detector
against the hand marks, in 112x112 crop px (the measure of analyze.py), at the photos' own sizes and with
every hand-marked face shrunk so that its 112x112 crop square is 24, 32 or 48 px (the photo region around
it resized with INTER_AREA, the marks scaled with it).
Needs the photos in photos/ and ./qface (run_all.sh prepares both).
usage: detector_check.py [hand_image.csv] [--json out.json]"""
import csv, json, os, subprocess, sys
import cv2, numpy as np
from prep import umeyama, T

NAMES = ['leye', 'reye', 'nose', 'lmouth', 'rmouth']

SIZES = [24, 32, 48]
hand_file = next((a for a in sys.argv[1:] if a.endswith('.csv')), 'hand_image.csv')
json_out = sys.argv[sys.argv.index('--json') + 1] if '--json' in sys.argv else None

# Hand marks in photo pixels (hand_image.csv: hand.csv's crop-frame marks mapped back to the photos; see
# notes.txt), grouped per face in file order; each face's crop-square side in photo pixels.
rows = list(csv.DictReader(open(hand_file)))
marked = []
for k in range(0, len(rows), 5):
    group = rows[k:k + 5]
    assert [r['point'] for r in group] == NAMES and len({r['photo'] for r in group}) == 1, group
    hand = np.array([[float(r['x']), float(r['y'])] for r in group])
    M = umeyama(hand, T)
    marked.append(dict(id=f"{group[0]['photo']}#{k // 5}", image=os.path.join('photos', group[0]['photo']), hand=hand,
                       side=112 / np.sqrt(abs(np.linalg.det(M[:, :2])))))

def apply(M, P): M = np.asarray(M); return P @ M[:, :2].T + M[:, 2]

def align(images, out, detector):
    subprocess.run(['./qface', 'align', '--images', images, '--out', out, '--all', '--detector', detector],
                   check=True, capture_output=True)
    found = {}
    for e in json.load(open(os.path.join(out, 'summary.json')))['aligned']:
        found.setdefault(os.path.basename(e['image']), []).append(np.array(e['landmarks']))
    return found

def residual(candidates, hand):
    """The face whose eye midpoint is nearest the hand marks' (within 0.3 of their eye distance), its five
    points vs the hand marks in the crop it makes; None when no face is that close."""
    iod = np.linalg.norm(hand[0] - hand[1]); mid = hand[:2].mean(0)
    best = min(candidates, key=lambda p: np.linalg.norm(p[:2].mean(0) - mid), default=None)
    if best is None or np.linalg.norm(best[:2].mean(0) - mid) > 0.3 * iod: return None
    M = umeyama(best, T)
    return np.linalg.norm(apply(M, best) - apply(M, hand), axis=1)

def shrink(size):
    """Each marked face's neighbourhood (4 crop squares wide) resized so its square is `size` px: cut out with
    the border replicated, then shrunk with INTER_AREA (faces are at least 2x larger than `size`)."""
    folder = f'small_{size}'; os.makedirs(folder, exist_ok=True)
    out = []
    for m in marked:
        c = m['hand'].mean(0); w = int(round(4 * m['side'])); n = int(round(4 * size))
        cut = np.array([[1, 0, w / 2 - c[0]], [0, 1, w / 2 - c[1]]])
        region = cv2.warpAffine(cv2.imread(m['image']), cut, (w, w), borderMode=cv2.BORDER_REPLICATE)
        path = os.path.join(folder, m['id'].replace('#', '_').replace('.', '_') + '.png')
        cv2.imwrite(path, cv2.resize(region, (n, n), interpolation=cv2.INTER_AREA))
        A = cut * (n / w)  # image -> small (resize maps x to x * n / w up to its half-pixel convention)
        A[:, 2] += 0.5 * (n / w) - 0.5
        out.append(dict(m, image=path, hand=apply(A, m['hand'])))
    return folder, out

rows, report = [], {}
for detector in ['hog', 'ssd']:
    found = align('photos', f'out_{detector}', detector)
    sets = [('photo size', [(m, found.get(os.path.basename(m['image']), [])) for m in marked])]
    for size in SIZES:
        folder, small = shrink(size)
        f = align(folder, f'{folder}_{detector}', detector)
        sets.append((f'{size} px', [(m, f.get(os.path.basename(m['image']), [])) for m in small]))
    for name, pairs in sets:
        R = [r for r in (residual(c, m['hand']) for m, c in pairs) if r is not None]
        allr = np.concatenate(R) if R else np.array([np.nan])
        rows.append(f'| {detector} | {name} | {len(R)} / {len(pairs)} | {allr.mean():.2f} | '
                    f'{np.median(allr):.2f} | {allr.max():.2f} |')
        report[f'{detector} {name}'] = dict(found=len(R), faces=len(pairs), mean=float(allr.mean()),
                                           median=float(np.median(allr)), max=float(allr.max()))

print(f'{len(marked)} hand-marked faces ({hand_file}); residual = |qface five points - hand marks| in 112x112 crop px\n')
print('| detector | face size | faces found | mean | median | max |\n|---|---|---:|---:|---:|---:|')
print('\n'.join(rows))
if json_out: json.dump(report, open(json_out, 'w'), indent=1)
