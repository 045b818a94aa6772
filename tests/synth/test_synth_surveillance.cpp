// The IJB-S-style surveillance set that `qface synth` writes in DIR/ijbs:
// media per subject, open-set probes, per-frame ground truth, temporally
// coherent videos, and independence from the rest of the folder.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "qface/core/fs.h"
#include "qface/synth/generate.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::TempDir;
using namespace qface::synth;

namespace {

// Rows of a CSV after its header, split on ','.
std::vector<std::vector<std::string>> csv_rows(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    rows.push_back(f);
  }
  return rows;
}

SynthOptions tiny() {
  SynthOptions o = preset_options("tiny");
  o.threads = 2;
  return o;
}

}  // namespace

TEST(SynthSurveillance, MediaProtocolsOpenSetAndGroundTruth) {
  TempDir dir;
  const SynthOptions o = tiny();
  const SynthSummary sum = generate(dir.path(), o);
  const fs::path s = dir / "ijbs";
  const json m = json::parse(qface::read_file(s / "manifest.json"));
  EXPECT_EQ(m["options"], surveillance_options_json(o));

  // templates.csv: one row per image or frame, every file present and decodable.
  const auto rows = csv_rows(s / "templates.csv");
  EXPECT_EQ(static_cast<int64_t>(rows.size()), sum.ijbs_images);
  std::map<int64_t, std::set<std::string>> media_of;  // template -> media
  std::map<int64_t, int64_t> subject_of, frames_of;
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 4u);
    const int64_t t = std::stoll(r[0]);
    media_of[t].insert(r[3]);
    subject_of[t] = std::stoll(r[1]);
    ++frames_of[t];
    ASSERT_TRUE(fs::exists(s / r[2])) << r[2];
    // Every image keeps its ground truth.
    const json& f = m["files"].at(r[2]);
    EXPECT_EQ(f["template"], t);
    EXPECT_EQ(f["media"], r[3]);
    EXPECT_GT(f["quality"].get<double>(), 0.0);
    EXPECT_LE(f["quality"].get<double>(), 1.0);
  }
  EXPECT_EQ(static_cast<int64_t>(media_of.size()), sum.ijbs_templates);
  EXPECT_FALSE(cv::imread((s / rows.back()[2]).string()).empty());
  for (const auto& [t, media] : media_of) EXPECT_EQ(media.size(), 1u) << "template " << t << " mixes media";

  // Per enrolled subject: one single photo, a booking set of ijbs_booking
  // photos, videos of at least 6 frames; unenrolled subjects have videos only.
  int64_t enrolled = 0, unenrolled = 0;
  for (const json& subj : m["subjects"]) {
    if (subj["enrolled"].get<bool>()) {
      ++enrolled;
      EXPECT_EQ(frames_of[subj["single"].get<int64_t>()], 1);
      EXPECT_EQ(*media_of[subj["single"].get<int64_t>()].begin(), "single");
      EXPECT_EQ(frames_of[subj["booking"].get<int64_t>()], o.ijbs_booking);
    } else {
      ++unenrolled;
      EXPECT_FALSE(subj.contains("single"));
    }
    EXPECT_GE(subj["videos"].size(), 1u);
    for (const json& v : subj["videos"]) EXPECT_GE(frames_of[v.get<int64_t>()], 6);
  }
  EXPECT_EQ(enrolled, o.ijbs_subjects);
  EXPECT_EQ(unenrolled, o.ijbs_unenrolled);

  // Protocols: every video probes the singles and the booking sets; the
  // unenrolled subjects' videos are open-set (their subject is in no gallery).
  for (const char* name : {"surveillance_to_single", "surveillance_to_booking", "surveillance_to_surveillance"}) {
    const auto prot = csv_rows(s / (std::string(name) + ".csv"));
    ASSERT_FALSE(prot.empty()) << name;
    int64_t mated = 0, nonmated = 0;
    for (const auto& r : prot) {
      ASSERT_EQ(r.size(), 2u);
      const int64_t probe = std::stoll(r[0]);
      EXPECT_EQ(*media_of.at(probe).begin(), "video") << name;
      std::set<int64_t> gallery_subjects;
      std::stringstream ss(r[1]);
      const std::string want = std::string(name) == "surveillance_to_single"    ? "single"
                               : std::string(name) == "surveillance_to_booking" ? "booking"
                                                                                : "video";
      for (std::string g; std::getline(ss, g, ';');) {
        EXPECT_EQ(*media_of.at(std::stoll(g)).begin(), want) << name;
        EXPECT_NE(std::stoll(g), probe) << name << ": a probe in its own gallery";
        gallery_subjects.insert(subject_of.at(std::stoll(g)));
      }
      (gallery_subjects.count(subject_of.at(probe)) ? mated : nonmated) += 1;
    }
    EXPECT_GT(mated, 0) << name;
    EXPECT_GT(nonmated, 0) << name;
  }
}

TEST(SynthSurveillance, VideosAreTemporallyCoherent) {
  TempDir dir;
  const SynthOptions o = tiny();
  ensure_surveillance(dir.path(), o);
  const json m = json::parse(qface::read_file(dir / "ijbs" / "manifest.json"));
  const double step = m["max_frame_step"].get<double>();
  int64_t videos = 0;
  bool some_size_change = false;
  for (const json& v : m["videos"]) {
    ++videos;
    const auto& frames = v["frames"];
    for (std::size_t f = 1; f < frames.size(); ++f) {
      const json& a = m["files"][frames[f - 1].get<std::string>()]["nuisance"]["strength"];
      const json& b = m["files"][frames[f].get<std::string>()]["nuisance"]["strength"];
      for (auto& [k, x] : a.items())
        EXPECT_LE(std::abs(b[k].get<double>() - x.get<double>()), step + 1e-4) << v["template"] << " frame " << f << " " << k;
      EXPECT_EQ(m["files"][frames[f].get<std::string>()]["frame"], static_cast<int64_t>(f));
    }
    // The subject walks: the resolution (lowres strength) changes along the video.
    const double first = m["files"][frames.front().get<std::string>()]["nuisance"]["strength"]["lowres"].get<double>();
    const double last = m["files"][frames.back().get<std::string>()]["nuisance"]["strength"]["lowres"].get<double>();
    some_size_change = some_size_change || std::abs(first - last) > 0.1;
  }
  EXPECT_GT(videos, 0);
  EXPECT_TRUE(some_size_change);
}

TEST(SynthSurveillance, AddedToAnOlderFolderWithoutTouchingTheRest) {
  TempDir a, b;
  SynthOptions o = tiny();
  generate(a.path(), o);
  // Other surveillance sizes: the rest of the folder is byte-identical.
  SynthOptions p = o;
  p.ijbs_frames = 9;
  p.ijbs_subjects = 3;
  generate(b.path(), p);
  for (const char* f : {"train.rec", "train.idx", "val_low.bin", "manifest.json", "ijb/meta/synth_1N_probe_mixed.csv"})
    EXPECT_TRUE(qface::read_file(a / f) == qface::read_file(b / f)) << f;
  EXPECT_NE(qface::read_file(a / "ijbs" / "templates.csv"), qface::read_file(b / "ijbs" / "templates.csv"));
  // ensure_surveillance: nothing to do when the set matches, rewritten (the
  // same bytes as a fresh generation) when it does not or is missing.
  std::vector<fs::path> only_old;  // frames of the older set that the new one does not have
  for (const auto& e : fs::directory_iterator(b / "ijbs" / "images"))
    if (!fs::exists(a / "ijbs" / "images" / e.path().filename())) only_old.push_back(e.path());
  ASSERT_FALSE(only_old.empty());
  EXPECT_FALSE(ensure_surveillance(a.path(), o));
  EXPECT_TRUE(ensure_surveillance(b.path(), o));
  EXPECT_EQ(qface::read_file(a / "ijbs" / "templates.csv"), qface::read_file(b / "ijbs" / "templates.csv"));
  for (const fs::path& f : only_old) EXPECT_FALSE(fs::exists(f)) << f << " left from the old set";
  fs::remove_all(a / "ijbs");
  EXPECT_TRUE(ensure_surveillance(a.path(), o));
  EXPECT_EQ(qface::read_file(a / "ijbs" / "manifest.json"), qface::read_file(b / "ijbs" / "manifest.json"));
}
