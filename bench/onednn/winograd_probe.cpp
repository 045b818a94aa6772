// oneDNN's Winograd against its direct f32 3x3 convolutions (forward, backward
// data, backward weights) on IR-50's stride-1 shapes, batch 32: the lever for
// fp32 training past the direct-convolution rate (docs/performance.md, "Training speed").
// LibTorch 1.13 calls the same libdnnl.so.2 but only with convolution_direct.
// With the argument `int8`: forward inference of oneDNN's int8 convolutions,
// direct against Winograd (jit_int8_wino), beside the f32 Winograd that fp32
// inference uses: whether an int8 Winograd path could bring int8 back to 2x
// the fp32 rate (docs/history.md, "Inference"). Throughput only: the int8 Winograd kernels'
// accuracy (they round the transformed input to 8 bits) is not measured.
// Not part of the build (needs libdnnl-dev):
//   g++ -O2 -std=c++17 bench/onednn/winograd_probe.cpp -o /tmp/winograd_probe -ldnnl
//   OMP_NUM_THREADS=2 /tmp/winograd_probe [int8]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

double run(engine& eng, stream& s, primitive p, std::unordered_map<int, memory> args) {
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

void int8_inference(engine& eng, stream& s) {
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
        const double t = run(eng, s, convolution_forward(pd),
                             {{DNNL_ARG_SRC, S}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_BIAS, B}, {DNNL_ARG_DST, D}});
        std::printf("C=%-3d %3dx%-3d %-14s %7.1f ms  %6.0f G(FL)OP/s  %s\n", sh.c, sh.h, sh.h, k.name, t * 1e3, gop / t,
                    pd.impl_info_str());
      } catch (const dnnl::error& e) {
        std::printf("C=%-3d %3dx%-3d %-14s unavailable: %s\n", sh.c, sh.h, sh.h, k.name, e.what());
      }
    }
  }
}

int main(int argc, char** argv) {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  if (argc > 1 && std::strcmp(argv[1], "int8") == 0) {
    int8_inference(eng, s);
    return 0;
  }
  struct Shape {
    int n, c, h;
  } shapes[] = {{32, 64, 56}, {32, 128, 28}, {32, 256, 14}, {32, 512, 7}};
  for (auto sh : shapes) {
    memory::dims src{sh.n, sh.c, sh.h, sh.h}, wei{sh.c, sh.c, 3, 3}, dst{sh.n, sh.c, sh.h, sh.h};
    double gflop = 2.0 * sh.n * sh.c * sh.c * 9.0 * sh.h * sh.h / 1e9;
    for (auto alg : {algorithm::convolution_direct, algorithm::convolution_winograd}) {
      const char* name = alg == algorithm::convolution_direct ? "direct" : "winograd";
      try {
        auto src_md = memory::desc(src, dt::f32, tag::any), wei_md = memory::desc(wei, dt::f32, tag::any),
             dst_md = memory::desc(dst, dt::f32, tag::any);
        auto fd =
            convolution_forward::desc(prop_kind::forward_training, alg, src_md, wei_md, dst_md, {1, 1}, {1, 1}, {1, 1});
        auto fpd = convolution_forward::primitive_desc(fd, eng);
        memory S(fpd.src_desc(), eng), W(fpd.weights_desc(), eng), D(fpd.dst_desc(), eng);
        double tf =
            run(eng, s, convolution_forward(fpd), {{DNNL_ARG_SRC, S}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_DST, D}});
        auto bd = convolution_backward_data::desc(alg, src_md, wei_md, dst_md, {1, 1}, {1, 1}, {1, 1});
        auto bpd = convolution_backward_data::primitive_desc(bd, eng, fpd);
        memory dS(bpd.diff_src_desc(), eng), W2(bpd.weights_desc(), eng), dD(bpd.diff_dst_desc(), eng);
        double tb = run(eng, s, convolution_backward_data(bpd),
                        {{DNNL_ARG_DIFF_SRC, dS}, {DNNL_ARG_WEIGHTS, W2}, {DNNL_ARG_DIFF_DST, dD}});
        auto wd = convolution_backward_weights::desc(alg, src_md, wei_md, dst_md, {1, 1}, {1, 1}, {1, 1});
        auto wpd = convolution_backward_weights::primitive_desc(wd, eng, fpd);
        memory S3(wpd.src_desc(), eng), dW(wpd.diff_weights_desc(), eng), dD3(wpd.diff_dst_desc(), eng);
        double tw = run(eng, s, convolution_backward_weights(wpd),
                        {{DNNL_ARG_SRC, S3}, {DNNL_ARG_DIFF_WEIGHTS, dW}, {DNNL_ARG_DIFF_DST, dD3}});
        std::printf(
            "C=%d %dx%d %-8s fwd %6.1f ms (%5.0f GF/s, %s)  bwd_data %6.1f ms (%5.0f, %s)  bwd_w %6.1f ms (%5.0f, "
            "%s)\n",
            sh.c, sh.h, sh.h, name, tf * 1e3, gflop / tf, fpd.impl_info_str(), tb * 1e3, gflop / tb,
            bpd.impl_info_str(), tw * 1e3, gflop / tw, wpd.impl_info_str());
      } catch (const dnnl::error& e) {
        std::printf("C=%d %dx%d %-8s unavailable: %s\n", sh.c, sh.h, sh.h, name, e.what());
      }
    }
  }
}
