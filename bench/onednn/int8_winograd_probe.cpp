// oneDNN's int8 convolutions, direct against Winograd (jit_int8_wino), and the
// f32 Winograd that fp32 inference uses, on IR-50's stride-1 3x3 shapes, batch
// 32, forward inference: whether an int8 Winograd path could bring int8 back
// to 2x the (Winograd) fp32 rate (README "int8"). Throughput only: the int8
// Winograd kernels' accuracy (they round the transformed input to 8 bits) is
// not measured here.
// Not part of the build (needs libdnnl-dev):
//   g++ -O2 -std=c++17 bench/onednn/int8_winograd_probe.cpp -o /tmp/int8_winograd_probe -ldnnl
//   OMP_NUM_THREADS=2 /tmp/int8_winograd_probe
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

double best_of_3(stream& s, const primitive& p, const std::unordered_map<int, memory>& args) {
  p.execute(s, args);
  s.wait();
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    p.execute(s, args);
    s.wait();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  struct Shape {
    int n, c, h;
  } shapes[] = {{32, 64, 56}, {32, 128, 28}, {32, 256, 14}, {32, 512, 7}};
  struct Kind {
    const char* name;
    algorithm alg;
    dt src, wei, dst;
  } kinds[] = {{"f32 winograd", algorithm::convolution_winograd, dt::f32, dt::f32, dt::f32},
               {"int8 direct", algorithm::convolution_direct, dt::u8, dt::s8, dt::u8},
               {"int8 winograd", algorithm::convolution_winograd, dt::u8, dt::s8, dt::u8}};
  for (auto sh : shapes) {
    const memory::dims src{sh.n, sh.c, sh.h, sh.h}, wei{sh.c, sh.c, 3, 3}, dst{sh.n, sh.c, sh.h, sh.h}, bias{sh.c};
    const double gop = 2.0 * sh.n * sh.c * sh.c * 9.0 * sh.h * sh.h / 1e9;
    for (const Kind& k : kinds) {
      try {
        const bool f32 = k.src == dt::f32;
        // int8 as LibTorch's quantized engine lays it out: nhwc activations.
        memory::desc src_md(src, k.src, f32 ? tag::any : tag::nhwc), wei_md(wei, k.wei, tag::any),
            dst_md(dst, k.dst, f32 ? tag::any : tag::nhwc), bias_md(bias, dt::f32, tag::x);
        primitive_attr attr;
        if (!f32) attr.set_output_scales(2, std::vector<float>(static_cast<std::size_t>(sh.c), 0.01f));
        convolution_forward::desc d(f32 ? prop_kind::forward_training : prop_kind::forward_inference, k.alg, src_md,
                                    wei_md, bias_md, dst_md, {1, 1}, {1, 1}, {1, 1});
        convolution_forward::primitive_desc pd(d, attr, eng);
        memory S(pd.src_desc(), eng), W(pd.weights_desc(), eng), B(pd.bias_desc(), eng), D(pd.dst_desc(), eng);
        const double t = best_of_3(s, convolution_forward(pd),
                                   {{DNNL_ARG_SRC, S}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_BIAS, B}, {DNNL_ARG_DST, D}});
        std::printf("C=%-3d %3dx%-3d %-14s %7.1f ms  %6.0f G(FL)OP/s  %s\n", sh.c, sh.h, sh.h, k.name, t * 1e3, gop / t,
                    pd.impl_info_str());
      } catch (const dnnl::error& e) {
        std::printf("C=%-3d %3dx%-3d %-14s unavailable: %s\n", sh.c, sh.h, sh.h, k.name, e.what());
      }
    }
  }
}
