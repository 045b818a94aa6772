#!/usr/bin/python3
"""Step 1: read qface summary.json, re-derive the 68 points with ./pts68, check they reproduce
qface's five points, fit the Umeyama similarity (5 pts -> 112x112 template), store everything in faces.json."""
import json, subprocess, numpy as np, sys
T = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
MIN_IOD = float(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) > 1 else 30.0

def umeyama(src, dst):
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0: D[1, 1] = -1
    R = U @ D @ Vt
    var = (s0 ** 2).sum() / len(src)
    c = np.trace(np.diag(S) @ D) / var
    t = mu_d - c * R @ mu_s
    M = np.zeros((2, 3)); M[:, :2] = c * R; M[:, 2] = t
    return M

def five(P):
    """qface's reduction (deploy/align.cpp): eye centres moved up by a quarter of the lid opening."""
    le = P[36:42].mean(0) + 0.25 * ((P[37] + P[38]) / 2 - (P[40] + P[41]) / 2)
    re = P[42:48].mean(0) + 0.25 * ((P[43] + P[44]) / 2 - (P[46] + P[47]) / 2)
    return np.array([le, re, P[30], P[48], P[54]])

if __name__ == '__main__':
    s = json.load(open('out/summary.json'))
    sel = [e for e in s['aligned'] if np.linalg.norm(np.subtract(*e['landmarks'][:2])) >= MIN_IOD]
    inp = ''.join(f"{e['image']} {' '.join(map(str, e['box']))}\n" for e in sel)
    res = subprocess.run(['./pts68'], input=inp, capture_output=True, text=True, check=True).stdout.strip().split('\n')
    faces = []
    for e, line in zip(sel, res):
        P = np.array(list(map(float, line.split()))).reshape(68, 2)
        L = np.array(e['landmarks'])
        err = np.abs(five(P) - L).max()
        assert err < 1e-6, (e['crop'], err)
        M = umeyama(L, T)
        faces.append(dict(id=e['crop'][:-4], image=e['image'], crop=e['crop'], box=e['box'], M=M.tolist(),
                          pts68=P.tolist(), five=L.tolist(), iod=float(np.linalg.norm(L[0] - L[1]))))
    json.dump(faces, open('faces.json', 'w'))
    print(len(faces), 'faces; 68->5 reproduction exact')
    for f in faces: print(f['id'], round(f['iod'], 1))
    