#include "qface/train/sharded_classifier.h"

#include <torch/torch.h>

#include "qface/core/error.h"
#include "qface/heads/curricularface.h"

namespace qface::train {

std::pair<int64_t, int64_t> shard_range(int64_t num_classes, int rank, int world_size) {
  const int64_t base = num_classes / world_size, extra = num_classes % world_size;
  const int64_t size = base + (rank < extra ? 1 : 0);
  const int64_t start = base * rank + std::min<int64_t>(rank, extra);
  return {start, size};
}

namespace {

struct DistCrossEntropyFn : public torch::autograd::Function<DistCrossEntropyFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor logits, torch::Tensor labels,
                               Dist* dist) {
    torch::NoGradGuard no_grad;
    const int64_t rows = logits.size(0);
    torch::Tensor max = std::get<0>(logits.max(1, true)).contiguous();
    dist->all_reduce_max(max);
    torch::Tensor probs = (logits - max).exp();
    torch::Tensor sum = probs.sum(1, true).contiguous();
    dist->all_reduce_sum(sum);
    probs.div_(sum);
    torch::Tensor valid = labels.ge(0);
    torch::Tensor target = torch::where(valid, probs.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1),
                                        torch::zeros({rows}, probs.options()))
                               .contiguous();
    dist->all_reduce_sum(target);
    ctx->save_for_backward({probs, labels});
    return -target.clamp_min(1e-30).log().mean();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor probs = saved[0], labels = saved[1];
    torch::Tensor valid = labels.ge(0);
    torch::Tensor onehot = torch::zeros_like(probs).scatter(1, labels.clamp_min(0).unsqueeze(1),
                                                            valid.to(probs.scalar_type()).unsqueeze(1));
    torch::Tensor g = (probs - onehot) / static_cast<double>(probs.size(0)) * grads[0];
    return {g, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor distributed_cross_entropy(const std::shared_ptr<Dist>& dist, const torch::Tensor& logits,
                                        const torch::Tensor& local_labels) {
  return DistCrossEntropyFn::apply(logits, local_labels, dist.get());
}

ShardedClassifierImpl::ShardedClassifierImpl(ShardedClassifierOptions o, std::shared_ptr<Dist> dist)
    : options(std::move(o)), dist_(std::move(dist)) {
  require(options.sample_rate > 0 && options.sample_rate <= 1,
          "sharded classifier: sample_rate must lie in (0, 1], got {}", options.sample_rate);
  const int64_t total = options.head.num_classes;
  require(total >= dist_->world_size(), "sharded classifier: {} classes cannot be split over {} ranks", total,
          dist_->world_size());
  std::tie(start_, size_) = shard_range(total, dist_->rank(), dist_->world_size());
  heads::HeadConfig shard = options.head;
  shard.num_classes = size_;
  head = register_module("head", heads::make_head(shard));
  // CurricularFace needs every row's target cosine on every shard (its
  // hard-negative threshold) and their global mean (t): the row's owner
  // supplies it, the other shards add 0. Every rank scores the whole global
  // batch, so no further mean reduction is needed. Negative sampling keeps
  // every positive class, so the owner always has the target.
  if (auto* cf = dynamic_cast<heads::CurricularFaceImpl*>(head.get()); cf && dist_->world_size() > 1)
    cf->set_row_reducer([d = dist_](const torch::Tensor& v) {
      torch::Tensor sum = v.contiguous().clone();
      d->all_reduce_sum(sum);
      return sum;
    });
  torch::NoGradGuard no_grad;
  if (dist_->world_size() > 1) head->kernel.normal_(0, 0.01);  // Partial FC's initialization
}

ShardedLoss ShardedClassifierImpl::forward(const torch::Tensor& x_hat, const torch::Tensor& norms,
                                           const torch::Tensor& labels) {
  require(x_hat.dim() == 2 && norms.numel() == x_hat.size(0) && labels.numel() == x_hat.size(0),
          "sharded classifier: batch shapes disagree");
  const double scale = options.scale_grad_for_averaging ? dist_->world_size() : 1.0;
  torch::Tensor x_all = all_gather_with_grad(dist_, x_hat, scale);
  torch::Tensor n_all = all_gather_with_grad(dist_, norms.reshape({-1}), scale);
  torch::Tensor y_all = dist_->all_gather(labels.reshape({-1}).to(torch::kInt64));

  torch::Tensor in_shard = y_all.ge(start_).logical_and(y_all.lt(start_ + size_));
  torch::Tensor local = torch::where(in_shard, y_all - start_, torch::full_like(y_all, -1));

  torch::Tensor kernel = head->kernel;
  const int64_t num_sample = static_cast<int64_t>(options.sample_rate * static_cast<double>(size_));
  if (options.sample_rate < 1.0) {
    torch::Tensor index;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor positive = std::get<0>(torch::_unique(local.masked_select(in_shard), /*sorted=*/true));
      index = positive;
      if (num_sample >= positive.numel()) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(
            options.seed * 1000003 + static_cast<uint64_t>(step_) * 101 + static_cast<uint64_t>(dist_->rank()));
        // Drawn on the CPU (the same draw on every device), used where the centres are.
        torch::Tensor perm =
            torch::rand({size_}, gen, torch::TensorOptions().dtype(torch::kFloat32)).to(positive.device());
        perm.index_fill_(0, positive, 2.0);
        index = std::get<0>(std::get<1>(perm.topk(num_sample)).sort());
      }
      local = torch::where(in_shard, torch::searchsorted(index, local.clamp_min(0)), local);
    }
    kernel = kernel.index_select(1, index);  // with gradient: only sampled centres learn
  }
  ++step_;
  torch::Tensor cosine = torch::mm(x_all, kernel / kernel.norm(2, 0, true));
  heads::HeadOutput out = head->apply_margin(cosine, n_all, local);
  ShardedLoss r;
  r.ce = distributed_cross_entropy(dist_, out.logits, local);
  r.reg = head->weighted_regularizer(norms);
  r.loss = r.ce + r.reg;
  return r;
}

}  // namespace qface::train
