#!/bin/sh
# Re-run the whole measurement (hand marks in hand.csv / hand_lowconf.csv are inputs, not regenerated).
# Works in $WORK (default /tmp/qface_parity) with the qface binary $QFACE (default: the build tree's).
set -e
here=$(cd "$(dirname "$0")" && pwd)
QFACE=${QFACE:-$here/../../build/qface}
WORK=${WORK:-/tmp/qface_parity}
mkdir -p "$WORK" && cp -r "$here"/* "$WORK"/ && cd "$WORK"
ln -sf "$QFACE" qface
[ -d photos ] || { mkdir -p photos; cp /usr/lib/python3/dist-packages/skimage/data/astronaut.png /usr/share/doc/opencv-doc/examples/data/messi5.jpg /usr/share/doc/libdlib19.1/examples/faces/*.jpg photos/; }
rm -rf out && ./qface align --images photos --out out --all --detector hog   # the dlib analysis below was made on HOG boxes
[ -x pts68 ] || g++ -std=c++17 -O1 -I/usr/include/opencv4 src/pts68.cpp -o pts68 -ldlib -llapack -lblas -lopencv_imgcodecs -lopencv_imgproc -lopencv_core
/usr/bin/python3 prep.py 30                      # faces.json: 68 points (checked to reproduce qface's 5), similarity
/usr/bin/python3 analyze.py hand.csv --fit --json results.json | tee results.txt
/usr/bin/python3 analyze.py hand_lowconf.csv | tee results_lowconf.txt
/usr/bin/python3 iris_check.py | tee iris_check.txt   # automatic iris-centre cross-check of the eye marks
/usr/bin/python3 check_crop_shift.py out | tee crop_shift.txt
# views: /usr/bin/python3 render.py [ids]  (unmarked, for marking);  /usr/bin/python3 render.py --check [ids]
/usr/bin/python3 analyze.py hand.csv --k 0.25,0,0 | tee results_proposal.txt
# the five points through each detector (hog, ssd), at the photos' sizes and with the faces shrunk to 24-48 px:
/usr/bin/python3 detector_check.py hand_image.csv --json detector_check.json | tee detector_check.txt
