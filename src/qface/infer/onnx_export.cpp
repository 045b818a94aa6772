#include "qface/infer/onnx_export.h"
#include "qface/core/torch_compat.h"

#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include "qface/backbones/iresnet.h"
#include "qface/backbones/ir.h"
#include "qface/backbones/mobilefacenet.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/version.h"

namespace qface::infer {
namespace bb = qface::backbones;

namespace {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  std::string weight(const torch::Tensor& t_in) {
    torch::Tensor t = t_in.detach().to(torch::kFloat32).contiguous();
    auto* init = g_->add_initializer();
    const std::string name = "w" + std::to_string(counter_++);
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : t.sizes()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.nbytes())));
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, std::string out = "") {
    auto* n = g_->add_node();
    n->set_op_type(op);
    if (out.empty()) out = op + "_" + std::to_string(counter_++);
    n->set_name(out);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  std::string conv(const std::string& x, const torch::nn::Conv2d& c) {
    const auto& o = c->options;
    std::vector<std::string> in = {x, weight(c->weight)};
    if (c->bias.defined()) in.push_back(weight(c->bias));
    auto* n = node("Conv", in);
    const auto k = *o.kernel_size();
    const auto s = *o.stride();
    const auto p = *compat::get<torch::ExpandingArray<2>>(o.padding());
    ints(n, "kernel_shape", {k[0], k[1]});
    ints(n, "strides", {s[0], s[1]});
    ints(n, "pads", {p[0], p[1], p[0], p[1]});
    integer(n, "group", o.groups());
    return n->output(0);
  }
  std::string bn(const std::string& x, const torch::nn::BatchNorm2d& b) {
    const int64_t c = b->running_mean.size(0);
    torch::Tensor w = b->weight.defined() ? b->weight : torch::ones({c});
    torch::Tensor bias = b->bias.defined() ? b->bias : torch::zeros({c});
    auto* n = node("BatchNormalization",
                   {x, weight(w), weight(bias), weight(b->running_mean), weight(b->running_var)});
    real(n, "epsilon", static_cast<float>(b->options.eps()));
    return n->output(0);
  }
  std::string prelu(const std::string& x, const torch::nn::PReLU& p) {
    return node("PRelu", {x, weight(p->weight.view({-1, 1, 1}))})->output(0);
  }
  std::string add(const std::string& a, const std::string& b) { return node("Add", {a, b})->output(0); }
  std::string subsample(const std::string& x, int64_t s) {
    if (s == 1) return x;
    auto* n = node("MaxPool", {x});
    ints(n, "kernel_shape", {1, 1});
    ints(n, "strides", {s, s});
    return n->output(0);
  }
  std::string linear(const std::string& x, const torch::nn::Linear& l) {
    auto* f = node("Flatten", {x});
    integer(f, "axis", 1);
    std::vector<std::string> in = {f->output(0), weight(l->weight)};
    if (l->bias.defined()) in.push_back(weight(l->bias));
    auto* n = node("Gemm", in);
    integer(n, "transB", 1);
    return n->output(0);
  }

 private:
  onnx::GraphProto* g_;
  int counter_ = 0;
};

std::string ir_graph(GraphBuilder& b, bb::IRNetImpl& m, std::string x) {
  x = b.prelu(b.conv(x, m.stem_conv), m.stem_prelu);
  for (auto& u : m.units) {
    std::string r = b.conv(b.bn(x, u->bn0), u->conv1);
    r = b.conv(b.prelu(r, u->prelu), u->conv2);
    if (u->se) {
      std::string s = b.node("GlobalAveragePool", {r})->output(0);
      s = b.node("Relu", {b.conv(s, u->se->fc1)})->output(0);
      s = b.node("Sigmoid", {b.conv(s, u->se->fc2)})->output(0);
      r = b.node("Mul", {r, s})->output(0);
    }
    x = b.add(r, u->shortcut_conv ? b.conv(x, u->shortcut_conv) : b.subsample(x, u->stride));
  }
  return b.linear(x, m.linear);
}

std::string iresnet_graph(GraphBuilder& b, bb::IResNetImpl& m, std::string x) {
  x = b.prelu(b.conv(x, m.conv1), m.prelu);
  for (auto& stage : m.blocks)
    for (auto& k : stage) {
      std::string r = b.conv(b.prelu(b.conv(b.bn(x, k->bn1), k->conv1), k->prelu), k->conv2);
      x = b.add(r, k->ds_conv ? b.conv(x, k->ds_conv) : x);
    }
  return b.linear(x, m.fc);
}

std::string convbn(GraphBuilder& b, bb::ConvBNImpl& c, const std::string& x) {
  std::string y = b.conv(x, c.conv);
  return c.prelu ? b.prelu(y, c.prelu) : y;
}
std::string depthwise(GraphBuilder& b, bb::DepthWiseImpl& d, const std::string& x) {
  std::string y = convbn(b, *d.project, convbn(b, *d.conv_dw, convbn(b, *d.conv, x)));
  return d.residual ? b.add(x, y) : y;
}
std::string mobilefacenet_graph(GraphBuilder& b, bb::MobileFaceNetImpl& m, std::string x) {
  x = convbn(b, *m.conv2_dw, convbn(b, *m.conv1, x));
  x = depthwise(b, *m.conv_23, x);
  for (auto& d : m.conv_3) x = depthwise(b, *d, x);
  x = depthwise(b, *m.conv_34, x);
  for (auto& d : m.conv_4) x = depthwise(b, *d, x);
  x = depthwise(b, *m.conv_45, x);
  for (auto& d : m.conv_5) x = depthwise(b, *d, x);
  x = convbn(b, *m.conv_6_dw, convbn(b, *m.conv_6_sep, x));
  return b.linear(x, m.linear);
}

void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  for (auto d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0) {
      dim->set_dim_param("N");
    } else {
      dim->set_dim_value(d);
    }
  }
}

}  // namespace

void export_onnx(bb::BackboneImpl& model, const std::filesystem::path& out) {
  model.fold_batchnorm();
  torch::NoGradGuard no_grad;
  onnx::ModelProto proto;
  proto.set_ir_version(6);
  proto.set_producer_name("qface");
  proto.set_producer_version(kVersion);
  proto.set_model_version(1);
  proto.set_doc_string("qface " + model.arch() + " backbone, BatchNorm folded");
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(11);
  auto* g = proto.mutable_graph();
  g->set_name(model.arch());
  GraphBuilder b(g);
  std::string features;
  if (auto* ir = dynamic_cast<bb::IRNetImpl*>(&model)) {
    features = ir_graph(b, *ir, "input");
  } else if (auto* ires = dynamic_cast<bb::IResNetImpl*>(&model)) {
    features = iresnet_graph(b, *ires, "input");
  } else if (auto* mfn = dynamic_cast<bb::MobileFaceNetImpl*>(&model)) {
    features = mobilefacenet_graph(b, *mfn, "input");
  } else {
    fail("export: no ONNX writer for backbone '{}'", model.arch());
  }
  // Outputs "embedding" (features / ||features||) and "norm" (N x 1, the
  // quality score). OpenCV DNN 4.6, the runtime Debian users have, fuses
  // ReduceL2 -> Div into its L2-normalize layer (the ReduceL2's output then
  // no longer exists) and cannot reshape a standalone ReduceL2 with a dynamic
  // batch, so the norm is computed beside it as Sqrt(MatMul(f * f, ones)),
  // which every runtime reads by name.
  auto* divisor = b.node("ReduceL2", {features}, "divisor");
  GraphBuilder::ints(divisor, "axes", {1});
  GraphBuilder::integer(divisor, "keepdims", 1);
  const std::string squares = b.node("Mul", {features, features})->output(0);
  const std::string sum = b.node("MatMul", {squares, b.weight(torch::ones({model.embedding_size(), 1}))})->output(0);
  b.node("Sqrt", {sum}, "norm");
  b.node("Div", {features, "divisor"}, "embedding");
  value_info(g->add_input(), "input", {-1, 3, 112, 112});
  value_info(g->add_output(), "embedding", {-1, model.embedding_size()});
  value_info(g->add_output(), "norm", {-1, 1});
  std::string bytes;
  require(proto.SerializeToString(&bytes), "export: cannot serialize the ONNX model of {}", model.arch());
  write_file_atomic(out, bytes);
}

}  // namespace qface::infer
