// Re-run dlib's 68-point shape predictor on the boxes qface reported, exactly as
// qface/deploy/align.cpp does (OpenCV imread BGR -> BGR2GRAY, dlib::cv_image, rectangle(x,y,x+w-1,y+h-1)).
// stdin lines: image_path x y w h ; stdout: 136 numbers per line (x0 y0 ... x67 y67)
#include <dlib/image_processing/shape_predictor.h>
#include <dlib/opencv/cv_image.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <iostream>
#include <string>
int main() {
  dlib::shape_predictor sp;
  dlib::deserialize("/usr/share/dlib/shape_predictor_68_face_landmarks.dat") >> sp;
  std::string path; long x, y, w, h;
  while (std::cin >> path >> x >> y >> w >> h) {
    cv::Mat img = cv::imread(path, cv::IMREAD_COLOR), gray;
    cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
    dlib::cv_image<unsigned char> im(gray);
    auto s = sp(im, dlib::rectangle(x, y, x + w - 1, y + h - 1));
    for (unsigned i = 0; i < 68; ++i) std::cout << s.part(i).x() << ' ' << s.part(i).y() << (i == 67 ? '\n' : ' ');
  }
}
