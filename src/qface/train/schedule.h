// Learning-rate schedules, evaluated per step from the config: linear warm-up,
// then multi-step (x gamma at each milestone epoch, AdaFace/MagFace recipes),
// cosine, or linear decay to 0 (arcface_torch's "polynomial, power 1").
#pragma once

#include <cstdint>

#include "qface/train/config.h"

namespace qface::train {

class LrSchedule {
 public:
  LrSchedule(const ScheduleConfig& config, double base_lr, int64_t steps_per_epoch, int64_t total_steps);
  // Learning rate of the optimizer step with index `step` (0-based).
  double at(int64_t step) const;
  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  ScheduleConfig config_;
  double base_;
  int64_t steps_per_epoch_, total_, warmup_steps_;
};

}  // namespace qface::train
