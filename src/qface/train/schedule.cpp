#include "qface/train/schedule.h"

#include <cmath>

#include "qface/core/error.h"

namespace qface::train {

LrSchedule::LrSchedule(const ScheduleConfig& config, double base_lr, int64_t steps_per_epoch, int64_t total_steps)
    : config_(config), base_(base_lr), steps_per_epoch_(steps_per_epoch), total_(total_steps) {
  require(steps_per_epoch > 0 && total_steps > 0, "schedule: no training steps (steps per epoch {}, total {})",
          steps_per_epoch, total_steps);
  warmup_steps_ = static_cast<int64_t>(std::llround(config.warmup_epochs * static_cast<double>(steps_per_epoch)));
  warmup_steps_ = std::min(warmup_steps_, total_steps - 1);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps_) return base_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  if (config_.type == "multistep") {
    double lr = base_;
    for (double m : config_.milestones)
      if (static_cast<double>(step) >= m * static_cast<double>(steps_per_epoch_)) lr *= config_.gamma;
    return lr;
  }
  const double span = static_cast<double>(std::max<int64_t>(1, total_ - warmup_steps_));
  const double t = std::clamp(static_cast<double>(step - warmup_steps_) / span, 0.0, 1.0);
  if (config_.type == "cosine") return config_.min_lr + (base_ - config_.min_lr) * 0.5 * (1 + std::cos(M_PI * t));
  return base_ * (1 - t);  // poly, power 1
}

}  // namespace qface::train
