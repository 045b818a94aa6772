#include "qface/train/config.h"

#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <limits>
#include <sstream>
#include <utility>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/text.h"

namespace qface::train {
namespace {

// Reads the keys of one table, rejecting any it does not know.
class Section {
 public:
  Section(const toml::table& table, std::string prefix, const std::string& file)
      : t_(table), prefix_(std::move(prefix)), file_(file) {}
  ~Section() = default;

  template <class T>
  void get(const char* key, T& out) {
    seen_.push_back(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, bool>) {
      auto v = n->value<bool>();
      if (!n->is_boolean() || !v) type_error(key, "true or false", *n);
      out = *v;
    } else if constexpr (std::is_integral_v<T>) {
      if (!n->is_integer()) type_error(key, "an integer", *n);
      const int64_t v = *n->value<int64_t>();
      // (Not std::in_range: the fuzz build compiles LibTorch-including code as C++17.)
      bool fits = false;
      if constexpr (std::is_signed_v<T>)
        fits = v >= static_cast<int64_t>(std::numeric_limits<T>::min()) && v <= static_cast<int64_t>(std::numeric_limits<T>::max());
      else
        fits = v >= 0 && static_cast<uint64_t>(v) <= std::numeric_limits<T>::max();
      if (!fits)
        fail("{}: key '{}{}' = {} is out of range [{}, {}]", file_, prefix_, key, v, std::numeric_limits<T>::min(),
             std::numeric_limits<T>::max());
      out = static_cast<T>(v);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!n->is_number()) type_error(key, "a number", *n);
      out = *n->value<double>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!n->is_string()) type_error(key, "a string", *n);
      out = *n->value<std::string>();
    } else if constexpr (std::is_same_v<T, std::optional<double>>) {
      if (!n->is_number()) type_error(key, "a number", *n);
      out = *n->value<double>();
    } else if constexpr (std::is_same_v<T, std::optional<std::string>>) {
      if (!n->is_string()) type_error(key, "a string", *n);
      out = *n->value<std::string>();
    } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
      if (!n->is_boolean()) type_error(key, "true or false", *n);
      out = *n->value<bool>();
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      const toml::array* a = n->as_array();
      if (!a) type_error(key, "an array of numbers", *n);
      out.clear();
      for (const auto& e : *a) {
        if (!e.is_number()) type_error(key, "an array of numbers", e);
        out.push_back(*e.value<double>());
      }
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      const toml::array* a = n->as_array();
      if (!a) type_error(key, "an array of strings", *n);
      out.clear();
      for (const auto& e : *a) {
        if (!e.is_string()) type_error(key, "an array of strings", e);
        out.push_back(*e.value<std::string>());
      }
    } else {
      static_assert(sizeof(T) == 0, "unsupported config type");
    }
  }

  // Sub-tables are checked by their own Section.
  void table(const char* key) { seen_.push_back(key); }

  void reject_unknown() const {
    for (const auto& [k, v] : t_) {
      const std::string key(k.str());
      if (std::find(seen_.begin(), seen_.end(), key) == seen_.end())
        fail("{}: unknown key '{}{}'", file_, prefix_, key);
    }
  }

 private:
  [[noreturn]] void type_error(const char* key, const char* expected, const toml::node& n) const {
    std::ostringstream got;
    got << n.type();
    fail("{}: key '{}{}' must be {}, got {}", file_, prefix_, key, expected, got.str());
  }
  const toml::table& t_;
  std::string prefix_;
  const std::string& file_;
  std::vector<std::string> seen_;
};

const toml::table& sub_table(const toml::table& root, const char* key, const std::string& file) {
  static const toml::table empty;
  const toml::node* n = root.get(key);
  if (!n) return empty;
  if (!n->is_table()) fail("{}: '{}' must be a table ([{}])", file, key, key);
  return *n->as_table();
}

void apply_override(toml::table& root, const std::string& item) {
  const auto eq = item.find('=');
  require(eq != std::string::npos && eq > 0, "--set {}: expected key=value", item);
  // TOML is UTF-8 text: other bytes could not be written back by to_toml (found by fuzz_config).
  require(is_utf8(item), "--set: '{}' is not valid UTF-8 text", item);
  const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word is a string
  }
  if (!parsed.get("v")) parsed = toml::table{{"v", value}};
  toml::table* t = &root;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    require(!part.empty(), "--set {}: empty key component", item);
    if (dot == std::string::npos) {
      t->insert_or_assign(part, *parsed.get("v"));
      return;
    }
    toml::node* n = t->get(part);
    if (!n) {
      t->insert(part, toml::table{});
      n = t->get(part);
    }
    require(n->is_table(), "--set {}: '{}' is not a table", item, part);
    t = n->as_table();
    start = dot + 1;
  }
}

// AdaFace's own options. head.stats_init is a recipe's choice for AdaFace
// (the synthetic recipes set "first_batch"): with another head (e.g. `--set
// head.name=arcface` on such a recipe, as the main job does) it is dropped,
// with a debug log, so that one recipe serves every head. head.fixed_z changes
// what is trained and stays an error with other heads (at make_head).
void check_head_options(heads::HeadConfig& h, const std::string& file) {
  if (h.stats_init) {
    require(*h.stats_init == "official" || *h.stats_init == "first_batch",
            "{}: head.stats_init must be \"official\" or \"first_batch\", got '{}'", file, *h.stats_init);
    if (h.name != "adaface") {
      spdlog::debug("{}: head.stats_init = \"{}\" is an AdaFace option; ignored for head '{}'", file,
                    *h.stats_init, h.name);
      h.stats_init.reset();
    }
  }
  if (h.fixed_z)
    require(*h.fixed_z >= -1 && *h.fixed_z <= 1, "{}: head.fixed_z must lie in [-1, 1], got {}", file, *h.fixed_z);
}

}  // namespace

TrainConfig parse_config(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: {}", name, e.source().begin.line, e.source().begin.column, e.description());
  }
  for (const auto& o : overrides) apply_override(root, o);

  TrainConfig c;
  Section top(root, "", name);
  top.get("out_dir", c.out_dir);
  top.get("epochs", c.epochs);
  top.get("batch_size", c.batch_size);
  top.get("max_steps", c.max_steps);
  top.get("seed", c.seed);
  top.get("device", c.device);
  top.get("threads", c.threads);
  top.get("grad_clip", c.grad_clip);
  top.get("bf16", c.bf16);
  top.get("winograd", c.winograd);
  top.get("log_every", c.log_every);
  top.get("checkpoint_every", c.checkpoint_every);
  top.get("keep_checkpoints", c.keep_checkpoints);
  for (const char* t : {"model", "head", "data", "optimizer", "schedule", "validation"}) top.table(t);
  top.reject_unknown();

  Section model(sub_table(root, "model", name), "model.", name);
  model.get("backbone", c.model.backbone);
  model.get("embedding_size", c.model.embedding_size);
  model.get("freeze_bn", c.model.freeze_bn);
  model.reject_unknown();

  Section head(sub_table(root, "head", name), "head.", name);
  auto& h = c.head.head;
  head.get("name", h.name);
  heads::for_each_head_option([&](const heads::HeadOptionInfo& o, auto member) { head.get(o.key, h.*member); });
  head.get("sharded", c.head.sharded);
  head.get("sample_rate", c.head.sample_rate);
  head.reject_unknown();

  Section data(sub_table(root, "data", name), "data.", name);
  data.get("train", c.data.train);
  data.get("loader_threads", c.data.loader_threads);
  data.get("crop_p", c.data.crop_p);
  data.get("low_res_p", c.data.low_res_p);
  data.get("photometric_p", c.data.photometric_p);
  data.get("flip_p", c.data.flip_p);
  data.get("drop_last", c.data.drop_last);
  data.get("skip_bad", c.data.skip_bad);
  data.reject_unknown();

  Section opt(sub_table(root, "optimizer", name), "optimizer.", name);
  opt.get("lr", c.optimizer.lr);
  opt.get("momentum", c.optimizer.momentum);
  opt.get("weight_decay", c.optimizer.weight_decay);
  opt.reject_unknown();

  Section sched(sub_table(root, "schedule", name), "schedule.", name);
  sched.get("type", c.schedule.type);
  sched.get("warmup_epochs", c.schedule.warmup_epochs);
  sched.get("milestones", c.schedule.milestones);
  sched.get("gamma", c.schedule.gamma);
  sched.get("min_lr", c.schedule.min_lr);
  sched.reject_unknown();

  Section val(sub_table(root, "validation", name), "validation.", name);
  val.get("sets", c.validation.sets);
  val.get("every", c.validation.every);
  val.get("batch_size", c.validation.batch_size);
  val.reject_unknown();

  // Value checks, each naming its key.
  require(c.epochs > 0, "{}: epochs must be positive, got {}", name, c.epochs);
  require(c.batch_size > 0, "{}: batch_size must be positive, got {}", name, c.batch_size);
  require(c.optimizer.lr > 0, "{}: optimizer.lr must be positive", name);
  require(c.optimizer.momentum >= 0 && c.optimizer.momentum < 1, "{}: optimizer.momentum must lie in [0, 1)", name);
  require(c.optimizer.weight_decay >= 0, "{}: optimizer.weight_decay must be >= 0", name);
  require(c.schedule.type == "multistep" || c.schedule.type == "cosine" || c.schedule.type == "poly",
          "{}: schedule.type must be multistep, cosine or poly, got '{}'", name, c.schedule.type);
  require(c.schedule.warmup_epochs >= 0 && c.schedule.warmup_epochs < static_cast<double>(c.epochs),
          "{}: schedule.warmup_epochs must lie in [0, epochs)", name);
  require(c.head.sample_rate > 0 && c.head.sample_rate <= 1, "{}: head.sample_rate must lie in (0, 1]", name);
  require(c.head.sample_rate == 1.0 || c.head.sharded, "{}: head.sample_rate < 1 needs head.sharded = true", name);
  for (double p : {c.data.crop_p, c.data.low_res_p, c.data.photometric_p, c.data.flip_p})
    require(p >= 0 && p <= 1, "{}: data augmentation probabilities must lie in [0, 1]", name);
  require(c.grad_clip >= 0, "{}: grad_clip must be >= 0", name);
  require(c.keep_checkpoints >= 1, "{}: keep_checkpoints must be at least 1", name);
  require(c.log_every >= 1, "{}: log_every must be at least 1", name);
  const auto& names = heads::head_names();
  require(std::find(names.begin(), names.end(), h.name) != names.end(), "{}: head.name '{}' is not a head ({})", name,
          h.name, fmt::join(names, ", "));
  check_head_options(c.head.head, name);
  return c;
}

TrainConfig load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  return parse_config(read_file(path), path.string(), overrides);
}

std::string to_toml(const TrainConfig& c) {
  toml::table head{{"name", c.head.head.name}, {"sharded", c.head.sharded}, {"sample_rate", c.head.sample_rate}};
  const auto& h = c.head.head;
  heads::for_each_head_option([&](const heads::HeadOptionInfo& o, auto member) {
    if (h.*member) head.insert(o.key, *(h.*member));
  });
  toml::array milestones, sets;
  for (double m : c.schedule.milestones) milestones.push_back(m);
  for (const auto& s : c.validation.sets) sets.push_back(s);
  toml::table root{
      {"out_dir", c.out_dir},
      {"epochs", c.epochs},
      {"batch_size", c.batch_size},
      {"max_steps", c.max_steps},
      {"seed", static_cast<int64_t>(c.seed)},
      {"threads", c.threads},
      {"grad_clip", c.grad_clip},
      {"bf16", c.bf16},
      {"winograd", c.winograd},
      {"log_every", c.log_every},
      {"checkpoint_every", c.checkpoint_every},
      {"keep_checkpoints", c.keep_checkpoints},
      {"model", toml::table{{"backbone", c.model.backbone}, {"embedding_size", c.model.embedding_size}, {"freeze_bn", c.model.freeze_bn}}},
      {"head", head},
      {"data", toml::table{{"train", c.data.train},
                           {"loader_threads", c.data.loader_threads},
                           {"crop_p", c.data.crop_p},
                           {"low_res_p", c.data.low_res_p},
                           {"photometric_p", c.data.photometric_p},
                           {"flip_p", c.data.flip_p},
                           {"drop_last", c.data.drop_last},
                           {"skip_bad", c.data.skip_bad}}},
      {"optimizer", toml::table{{"lr", c.optimizer.lr},
                                {"momentum", c.optimizer.momentum},
                                {"weight_decay", c.optimizer.weight_decay}}},
      {"schedule", toml::table{{"type", c.schedule.type},
                               {"warmup_epochs", c.schedule.warmup_epochs},
                               {"milestones", milestones},
                               {"gamma", c.schedule.gamma},
                               {"min_lr", c.schedule.min_lr}}},
      {"validation", toml::table{{"sets", sets}, {"every", c.validation.every}, {"batch_size", c.validation.batch_size}}},
  };
  // Only a device other than the default is written: the text of a CPU
  // config stays what it was before the key existed, so the study's stage
  // fingerprints (study/main_job.cpp) keep matching its trained runs.
  if (c.device != "cpu") root.insert("device", c.device);
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

}  // namespace qface::train
