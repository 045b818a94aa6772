#include "apps/qface/bench/profile.h"

#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <utility>
#include <vector>

namespace qface::cli {

nlohmann::json profile_ops(const std::function<void()>& f) {
  namespace prof = torch::autograd::profiler;
  std::map<std::string, std::pair<double, int64_t>> ops;  // name -> (self us, calls)
  auto collect = [&ops](const prof::thread_event_lists& lists) {
    // Within a thread, ranges nest: a pop closes the latest push. Self time is
    // a range's time minus its children's.
    for (const auto& list : lists) {
      std::vector<std::pair<const prof::LegacyEvent*, double>> open;  // (push, children us)
      for (const auto& e : list) {
        if (e.kind() == prof::EventKind::PushRange) {
          open.emplace_back(&e, 0.0);
        } else if (e.kind() == prof::EventKind::PopRange && !open.empty()) {
          const auto [push, children] = open.back();
          open.pop_back();
          const double total = push->cpuElapsedUs(e);
          auto& op = ops[push->name()];
          op.first += total - children;
          op.second += 1;
          if (!open.empty()) open.back().second += total;
        }
      }
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  {
    prof::TLSLegacyProfilerGuard guard(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
                                       collect);
    f();
  }
  nlohmann::json out = {
      {"wall_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()},
      {"ops", nlohmann::json::object()}};
  for (const auto& [name, t] : ops) out["ops"][name] = {{"self_ms", t.first / 1000}, {"calls", t.second}};
  return out;
}

void print_profile(const nlohmann::json& qface, const nlohmann::json& python, int top) {
  std::vector<std::pair<double, std::string>> order;
  double sum = 0;
  for (const auto& [name, t] : qface["ops"].items()) {
    order.emplace_back(t["self_ms"].get<double>(), name);
    sum += t["self_ms"].get<double>();
  }
  std::sort(order.rbegin(), order.rend());
  const bool py = python.is_object() && python.contains("ops");
  double py_sum = 0;
  if (py)
    for (const auto& [name, t] : python["ops"].items()) py_sum += t["self_ms"].get<double>();
  std::cout << fmt::format("{:<44} {:>10} {:>6} {:>10} {:>6}\n", "operator (self CPU time, one step)", "qface ms",
                           "calls", py ? "python ms" : "", py ? "calls" : "");
  for (int i = 0; i < top && i < static_cast<int>(order.size()); ++i) {
    const auto& [ms, name] = order[i];
    std::string py_cols;
    if (py && python["ops"].contains(name))
      py_cols = fmt::format("{:10.1f} {:6}", python["ops"][name]["self_ms"].get<double>(),
                            python["ops"][name]["calls"].get<int64_t>());
    else if (py)
      py_cols = fmt::format("{:>10} {:>6}", "-", "");
    std::cout << fmt::format("{:<44} {:10.1f} {:6} {}\n", name.substr(0, 44), ms,
                             qface["ops"][name]["calls"].get<int64_t>(), py_cols);
  }
  // Python ops qface does not run at all (or runs under another name).
  if (py) {
    std::vector<std::pair<double, std::string>> missing;
    for (const auto& [name, t] : python["ops"].items())
      if (!qface["ops"].contains(name) && t["self_ms"].get<double>() >= 1.0)
        missing.emplace_back(t["self_ms"].get<double>(), name);
    std::sort(missing.rbegin(), missing.rend());
    for (std::size_t i = 0; i < missing.size() && i < 5; ++i)
      std::cout << fmt::format("{:<44} {:>10} {:>6} {:10.1f}\n", missing[i].second.substr(0, 44), "-", "",
                               missing[i].first);
  }
  const double wall = qface["wall_ms"].get<double>();
  std::cout << fmt::format("{:<44} {:10.1f} {:>6} {}\n", "all operators", sum, "",
                           py ? fmt::format("{:10.1f}", py_sum) : "");
  std::cout << fmt::format("{:<44} {:10.1f} {:>6} {}\n", "outside operators (engine, our code)", wall - sum, "",
                           py ? fmt::format("{:10.1f}", python["wall_ms"].get<double>() - py_sum) : "");
  std::cout << fmt::format("{:<44} {:10.1f} {:>6} {}\n", "step wall time (profiled)", wall, "",
                           py ? fmt::format("{:10.1f}", python["wall_ms"].get<double>()) : "");
}

}  // namespace qface::cli
