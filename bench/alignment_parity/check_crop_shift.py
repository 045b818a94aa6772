#!/usr/bin/python3
"""Side check: does qface's crop PNG equal the Umeyama warp onto the 112x112 arcface template?
Searches an integer (dx,dy) offset; prints the best one per face (0,0 expected). usage: check_crop_shift.py OUTDIR"""
import sys, json, numpy as np
from skimage.io import imread
from scipy.ndimage import map_coordinates
out = sys.argv[1] if len(sys.argv) > 1 else 'out'
faces = {f['id']: f for f in json.load(open('faces.json'))}
for fid in ['bald_guys_0', 'astronaut_0', 'Tom_Cruise_avp_2014_4_0']:
    f = faces[fid]; q = imread(f'{out}/' + f['crop'])[..., :3].astype(float).mean(-1)
    im = imread(f['image'])[..., :3].astype(float).mean(-1)
    Ai = np.linalg.inv(np.vstack([np.array(f['M']), [0, 0, 1]]))
    U, V = np.meshgrid(np.arange(112.), np.arange(112.)); best = []
    for dx in range(-12, 13):
        for dy in range(-4, 5):
            X = Ai[0,0]*(U+dx) + Ai[0,1]*(V+dy) + Ai[0,2]; Y = Ai[1,0]*(U+dx) + Ai[1,1]*(V+dy) + Ai[1,2]
            best.append((np.abs(map_coordinates(im, [Y, X], order=1) - q)[10:100, 10:90].mean(), dx, dy))
    e, dx, dy = min(best)
    print(f"{out}/{f['crop']}: crop(x,y) = template_warp(x{dx:+d}, y{dy:+d})  (mean abs grey diff {e:.2f})")
