#include "qface/data/recordio.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

#include "qface/core/error.h"
#include "qface/core/fs.h"

namespace qface::data {
namespace fs = std::filesystem;

namespace {

static_assert(sizeof(float) == 4, "IEEE float32 expected");

template <class T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86/ARM little endian, as the format
  return v;
}

template <class T>
void store_le(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

constexpr uint32_t kLengthMask = (1u << 29) - 1;

uint32_t encode_lrec(uint32_t cflag, uint32_t length) { return (cflag << 29) | length; }

std::atomic<unsigned> temp_counter{0};

fs::path temp_for(const fs::path& p) {
  return p.parent_path() / fmt::format(".{}.tmp.{}.{}", p.filename().string(), ::getpid(), temp_counter++);
}

bool is_aligned_magic(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w == kRecordMagic;
}

}  // namespace

std::string pack_payload(IRHeader header, const std::vector<float>& labels, std::string_view image) {
  if (!labels.empty()) header.flag = static_cast<uint32_t>(labels.size());
  std::string out;
  out.reserve(kIRHeaderSize + 4 * labels.size() + image.size());
  store_le(out, header.flag);
  store_le(out, labels.empty() ? header.label : 0.0f);
  store_le(out, header.id);
  store_le(out, header.id2);
  for (float l : labels) store_le(out, l);
  out.append(image);
  return out;
}

Record unpack_payload(std::string_view payload, const std::string& where) {
  require(payload.size() >= kIRHeaderSize, "{}: payload of {} bytes is shorter than the 24-byte IRHeader", where,
          payload.size());
  Record r;
  r.header.flag = load_le<uint32_t>(payload.data());
  r.header.label = load_le<float>(payload.data() + 4);
  r.header.id = load_le<uint64_t>(payload.data() + 8);
  r.header.id2 = load_le<uint64_t>(payload.data() + 16);
  std::size_t pos = kIRHeaderSize;
  if (r.header.flag > 0) {
    require(r.header.flag <= (payload.size() - pos) / 4, "{}: IRHeader flag {} asks for {} label floats, but only {} bytes follow",
            where, r.header.flag, r.header.flag, payload.size() - pos);
    r.labels.resize(r.header.flag);
    for (uint32_t k = 0; k < r.header.flag; ++k) r.labels[k] = load_le<float>(payload.data() + pos + 4 * k);
    pos += 4 * static_cast<std::size_t>(r.header.flag);
  }
  r.image.assign(payload.substr(pos));
  return r;
}

fs::path idx_path_for(const fs::path& rec) {
  fs::path p = rec;
  p.replace_extension(".idx");
  return p;
}

// ---------------------------------------------------------------------------
RecordFile::RecordFile(const fs::path& rec, const ReadOptions& options) : path_(rec) {
  std::error_code ec;
  if (fs::is_directory(rec, ec)) fail("{}: is a directory, expected a .rec file", rec.string());
  int fd = ::open(rec.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", rec.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("{}: cannot stat: {}", rec.string(), std::strerror(errno));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      fail("{}: cannot map: {}", rec.string(), std::strerror(errno));
    }
    data_ = static_cast<const char*>(m);
  }
  ::close(fd);
  try {
    const fs::path idx = options.idx.empty() ? idx_path_for(rec) : options.idx;
    if (options.use_index && fs::exists(idx, ec)) {
      load_index(idx, options.skip_bad);
    } else {
      require(options.idx.empty() || !options.use_index, "{}: index file does not exist", idx.string());
      scan_keys(options.skip_bad);
    }
  } catch (...) {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    throw;
  }
}

RecordFile::~RecordFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

void RecordFile::load_index(const fs::path& idx, bool skip_bad) {
  indexed_ = true;
  const std::string text = read_file(idx);
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty()) continue;
    std::string problem;
    uint64_t key = 0, off = 0;
    const std::size_t sep = line.find_first_of("\t ");
    if (sep == std::string_view::npos) {
      problem = fmt::format("expected 'key<TAB>offset', got '{}'", line.substr(0, 40));
    } else {
      std::string_view ks = line.substr(0, sep), os = line.substr(sep + 1);
      while (!os.empty() && (os.front() == ' ' || os.front() == '\t')) os.remove_prefix(1);
      auto r1 = std::from_chars(ks.data(), ks.data() + ks.size(), key);
      auto r2 = std::from_chars(os.data(), os.data() + os.size(), off);
      if (r1.ec != std::errc() || r1.ptr != ks.data() + ks.size() || r2.ec != std::errc() ||
          r2.ptr != os.data() + os.size()) {
        problem = fmt::format("expected 'key<TAB>offset' with two non-negative integers, got '{}'", line.substr(0, 40));
      } else if (offsets_.count(key)) {
        problem = fmt::format("duplicate key {}", key);
      } else if (size_ < 8 || off > size_ - 8) {  // not off + 8 > size_: that wraps for offsets near 2^64
        problem = fmt::format("key {}: offset {} is past the end of {} ({} bytes)", key, off, path_.filename().string(), size_);
      } else if (off % 4 != 0) {
        problem = fmt::format("key {}: offset {} is not 4-byte aligned, so not the start of a record", key, off);
      }
    }
    if (!problem.empty()) {
      if (!skip_bad) fail("{}: line {}: {}", idx.string(), line_no, problem);
      spdlog::warn("{}: line {}: {} (skipped)", idx.string(), line_no, problem);
      ++skipped_;
      continue;
    }
    offsets_.emplace(key, off);
    keys_.push_back(key);
  }
}

uint64_t RecordFile::find_magic(uint64_t from) const {
  if (from >= size_) return size_;
  from = (from + 3) / 4 * 4;
  for (uint64_t p = from; size_ >= 8 && p <= size_ - 8; p += 4)
    if (is_aligned_magic(data_ + p)) return p;
  return size_;
}

void RecordFile::scan_keys(bool skip_bad) {
  indexed_ = false;
  uint64_t off = 0, ordinal = 0;
  while (off < size_) {
    uint64_t next = 0;
    try {
      read_at(off, &next, fmt::format("record {}", ordinal));
    } catch (const Error& e) {
      if (!skip_bad) throw;
      spdlog::warn("{} (skipped; resynchronizing at the next magic word)", e.what());
      ++skipped_;
      off = find_magic(off + 4);
      continue;
    }
    offsets_.emplace(ordinal, off);
    keys_.push_back(ordinal);
    ++ordinal;
    off = next;
  }
}

uint64_t RecordFile::offset(uint64_t key) const {
  auto it = offsets_.find(key);
  if (it == offsets_.end()) fail("{}: record {} does not exist ({} records)", path_.string(), key, keys_.size());
  return it->second;
}

std::string RecordFile::read_at(uint64_t off, uint64_t* next, const std::string& what) const {
  std::string out;
  bool first = true;
  while (true) {
    // Overflow-safe bounds (offsets come from the .idx file and may be anything).
    if (size_ < 8 || off > size_ - 8)
      fail("{}: {} at byte offset {}: record header runs past the end of the file ({} bytes)", path_.string(), what,
           off, size_);
    const uint32_t magic = load_le<uint32_t>(data_ + off);
    if (magic != kRecordMagic)
      fail("{}: {} at byte offset {}: wrong magic 0x{:08x} (expected 0x{:08x})", path_.string(), what, off, magic,
           kRecordMagic);
    const uint32_t lrec = load_le<uint32_t>(data_ + off + 4);
    const uint32_t cflag = lrec >> 29, len = lrec & kLengthMask;
    const uint64_t padded = (static_cast<uint64_t>(len) + 3) / 4 * 4;
    if (padded > size_ - off - 8)
      fail("{}: {} at byte offset {}: length {} runs past the end of the file ({} bytes)", path_.string(), what, off,
           len, size_);
    if (first ? !(cflag == 0 || cflag == 1) : !(cflag == 2 || cflag == 3))
      fail("{}: {} at byte offset {}: unexpected continuation flag {}", path_.string(), what, off, cflag);
    out.append(data_ + off + 8, len);
    off += 8 + padded;
    if (cflag == 0 || cflag == 3) break;
    // The writer removed a magic word from the payload where it split it.
    const uint32_t m = kRecordMagic;
    out.append(reinterpret_cast<const char*>(&m), 4);
    first = false;
  }
  if (next) *next = off;
  return out;
}

std::string RecordFile::read_payload(uint64_t key) const {
  return read_at(offset(key), nullptr, fmt::format("record {}", key));
}

Record RecordFile::read(uint64_t key) const {
  return unpack_payload(read_payload(key), fmt::format("{}: record {}", path_.string(), key));
}

// ---------------------------------------------------------------------------
RecordWriter::RecordWriter(const fs::path& rec, const fs::path& idx)
    : rec_(rec), idx_(idx.empty() ? idx_path_for(rec) : idx) {
  if (!rec_.parent_path().empty()) ensure_dir(rec_.parent_path());
  rec_tmp_ = temp_for(rec_);
  fd_ = ::open(rec_tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", rec_.string(), std::strerror(errno));
}

RecordWriter::~RecordWriter() {
  std::error_code ec;
  if (fd_ >= 0) {
    ::close(fd_);
    fs::remove(rec_tmp_, ec);
  }
  if (!idx_tmp_.empty()) fs::remove(idx_tmp_, ec);
}

namespace {
void write_all(int fd, const fs::path& p, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", p.string(), std::strerror(errno));
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}
}  // namespace

uint64_t RecordWriter::write(uint64_t key, std::string_view payload) {
  require(fd_ >= 0, "{}: writer already committed", rec_.string());
  require(payload.size() <= kLengthMask, "{}: record {} of {} bytes exceeds RecordIO's 2^29-byte limit",
          rec_.string(), key, payload.size());
  require(keys_.emplace(key, true).second, "{}: duplicate record key {}", rec_.string(), key);
  const uint64_t start = pos_;
  // As dmlc-core's RecordIOWriter: split the payload where a 4-byte aligned
  // word equals the magic (so a reader can resynchronize on magic words),
  // dropping that word; the reader puts it back between the parts.
  std::string buf;
  buf.reserve(payload.size() + 16);
  const uint32_t len = static_cast<uint32_t>(payload.size());
  const uint32_t lower = len / 4 * 4;
  uint32_t dptr = 0;
  auto put_header = [&](uint32_t cflag, uint32_t n) {
    store_le(buf, kRecordMagic);
    store_le(buf, encode_lrec(cflag, n));
  };
  for (uint32_t i = 0; i < lower; i += 4) {
    if (is_aligned_magic(payload.data() + i)) {
      put_header(dptr == 0 ? 1u : 2u, i - dptr);
      buf.append(payload.data() + dptr, i - dptr);
      dptr = i + 4;
    }
  }
  put_header(dptr != 0 ? 3u : 0u, len - dptr);
  buf.append(payload.data() + dptr, len - dptr);
  buf.append((4 - buf.size() % 4) % 4, '\0');
  write_all(fd_, rec_, buf.data(), buf.size());
  pos_ += buf.size();
  idx_text_ += fmt::format("{}\t{}\n", key, start);
  return start;
}

void RecordWriter::rewrite(uint64_t offset, std::string_view payload) {
  require(fd_ >= 0, "{}: writer already committed", rec_.string());
  char head[8];
  require(::pread(fd_, head, 8, static_cast<off_t>(offset)) == 8 && load_le<uint32_t>(head) == kRecordMagic,
          "{}: no record at byte offset {} to rewrite", rec_.string(), offset);
  const uint32_t lrec = load_le<uint32_t>(head + 4);
  require(lrec >> 29 == 0 && (lrec & kLengthMask) == payload.size(),
          "{}: record at byte offset {} has a different length than its replacement", rec_.string(), offset);
  for (std::size_t i = 0; i + 4 <= payload.size(); i += 4)
    require(!is_aligned_magic(payload.data() + i), "{}: replacement payload contains the magic word", rec_.string());
  std::size_t done = 0;
  while (done < payload.size()) {
    ssize_t w = ::pwrite(fd_, payload.data() + done, payload.size() - done, static_cast<off_t>(offset + 8 + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", rec_.string(), std::strerror(errno));
    }
    done += static_cast<std::size_t>(w);
  }
}

// The commit order, so that a crash at any point leaves either the old pair,
// or a .rec without an .idx (readers then scan the records), never a new .rec
// with an old .idx whose offsets point into the wrong records:
//   1. the new .rec and .idx are complete and fsynced under temporary names;
//   2. the old .idx is removed (folder fsynced);
//   3. the new .rec is renamed into place;
//   4. the new .idx is renamed into place (folders fsynced).
void RecordWriter::commit() {
  require(fd_ >= 0, "{}: writer already committed", rec_.string());
  std::error_code ec;
  auto abandon = [&](const std::string& what) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    fs::remove(rec_tmp_, ec);
    if (!idx_tmp_.empty()) fs::remove(idx_tmp_, ec);
    idx_tmp_.clear();
    throw Error(what);
  };
  if (::fsync(fd_) != 0) abandon(fmt::format("{}: fsync failed: {}", rec_.string(), std::strerror(errno)));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) abandon(fmt::format("{}: close failed: {}", rec_.string(), std::strerror(errno)));
  // 1. The .idx under a temporary name, fsynced.
  idx_tmp_ = temp_for(idx_);
  {
    const int fd = ::open(idx_tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) abandon(fmt::format("{}: cannot create: {}", idx_.string(), std::strerror(errno)));
    try {
      write_all(fd, idx_, idx_text_.data(), idx_text_.size());
    } catch (const Error& e) {
      ::close(fd);
      abandon(e.what());
    }
    const bool synced = ::fsync(fd) == 0;
    const int err = errno;
    if (::close(fd) != 0 || !synced)
      abandon(fmt::format("{}: fsync/close failed: {}", idx_.string(), std::strerror(synced ? errno : err)));
  }
  // 2. No old .idx next to the new .rec.
  if (!fs::remove(idx_, ec) && ec) abandon(fmt::format("{}: cannot remove the old index: {}", idx_.string(), ec.message()));
  fsync_dir(idx_.parent_path());
  // 3. + 4.
  fs::rename(rec_tmp_, rec_, ec);
  if (ec) abandon(fmt::format("{}: cannot rename temporary file into place: {}", rec_.string(), ec.message()));
  fs::rename(idx_tmp_, idx_, ec);
  if (ec) abandon(fmt::format("{}: cannot rename temporary file into place: {}", idx_.string(), ec.message()));
  idx_tmp_.clear();
  fsync_dir(rec_.parent_path());
  if (idx_.parent_path() != rec_.parent_path()) fsync_dir(idx_.parent_path());
}

// ---------------------------------------------------------------------------
namespace {
std::string header_payload(uint64_t a, uint64_t b) {
  return pack_payload(IRHeader{}, {static_cast<float>(a), static_cast<float>(b)}, {});
}
constexpr int64_t kMaxExactLabel = int64_t{1} << 24;
}  // namespace

FaceRecordWriter::FaceRecordWriter(const fs::path& rec, const fs::path& idx) : writer_(rec, idx) {
  writer_.write(0, header_payload(0, 0));  // reserved; finish() fills it in
}

uint64_t FaceRecordWriter::add_image(std::string_view encoded, int64_t label) {
  require(!finished_, "FaceRecordWriter: add_image after finish");
  require(label >= 0 && label < kMaxExactLabel, "image {}: label {} is outside [0, 2^24)", images_, label);
  require(label >= last_label_, "image {}: label {} after label {}: images of one identity must be contiguous "
          "(sort by label)", images_, label, last_label_);
  const uint64_t key = 1 + images_;
  if (ranges_.size() <= static_cast<std::size_t>(label)) ranges_.resize(static_cast<std::size_t>(label) + 1, {key, key});
  ranges_[static_cast<std::size_t>(label)].second = key + 1;
  IRHeader h;
  h.label = static_cast<float>(label);
  h.id = key;
  writer_.write(key, pack_payload(h, {}, encoded));
  last_label_ = label;
  ++images_;
  return key;
}

void FaceRecordWriter::finish(int64_t num_classes) {
  require(!finished_, "FaceRecordWriter: finish called twice");
  const uint64_t end_images = 1 + images_;
  if (num_classes > 0 && static_cast<std::size_t>(num_classes) > ranges_.size())
    ranges_.resize(static_cast<std::size_t>(num_classes), {end_images, end_images});
  require(ranges_.size() + end_images < static_cast<uint64_t>(kMaxExactLabel), "too many records for float32 labels");
  for (std::size_t c = 0; c < ranges_.size(); ++c) {
    IRHeader h;
    h.id = end_images + c;
    writer_.write(end_images + c, pack_payload(h, {static_cast<float>(ranges_[c].first),
                                                    static_cast<float>(ranges_[c].second)}, {}));
  }
  writer_.rewrite(0, header_payload(end_images, end_images + ranges_.size()));
  writer_.commit();
  finished_ = true;
}

// ---------------------------------------------------------------------------
namespace {
// A float label that must be a non-negative integer (below 2^24).
bool integral_label(float v, int64_t* out) {
  if (!std::isfinite(v) || v < 0 || v >= static_cast<float>(kMaxExactLabel) || std::floor(v) != v) return false;
  *out = static_cast<int64_t>(v);
  return true;
}
}  // namespace

FaceRecordSet::FaceRecordSet(const fs::path& rec, const ReadOptions& options)
    : file_(std::make_unique<RecordFile>(rec, options)) {
  const std::string name = file_->path().string();
  std::optional<Record> head;
  if (file_->contains(0)) head = file_->read(0);
  if (head && head->header.flag > 0 && head->labels.size() >= 2) {
    has_header_ = true;
    int64_t a = 0, b = 0;
    require(integral_label(head->labels[0], &a) && integral_label(head->labels[1], &b) && a >= 1 && b >= a,
            "{}: record 0: header label [{}, {}] is not a valid [images end, identities end) pair", name,
            head->labels[0], head->labels[1]);
    // The images are the keys 1..a-1 that the file holds. Walk the file's
    // keys, not the header's range: a crafted header naming 2^24 images
    // must not cost 2^24 steps (with skip_bad it took 44 s, found by fuzzing).
    for (uint64_t k : file_->keys())
      if (k >= 1 && k < static_cast<uint64_t>(a)) image_keys_.push_back(k);
    std::sort(image_keys_.begin(), image_keys_.end());
    image_keys_.erase(std::unique(image_keys_.begin(), image_keys_.end()), image_keys_.end());
    const int64_t missing = (a - 1) - static_cast<int64_t>(image_keys_.size());
    if (missing > 0) {
      // The first few missing keys, by a merge walk that stops after them.
      std::vector<uint64_t> first_missing;
      auto present = image_keys_.begin();
      for (uint64_t k = 1; k < static_cast<uint64_t>(a) && first_missing.size() < 5; ++k) {
        while (present != image_keys_.end() && *present < k) ++present;
        if (present == image_keys_.end() || *present != k) first_missing.push_back(k);
      }
      for (uint64_t k : first_missing) {
        const std::string problem = fmt::format("{}: record {}: image record named by the header (1..{}) is missing{}",
                                                name, k, a - 1, file_->indexed() ? " from the index" : "");
        if (!options.skip_bad) fail("{}", problem);
        spdlog::warn("{} (skipped)", problem);
      }
      if (missing > 5)
        spdlog::warn("{}: {} image records named by the header are missing in all (skipped)", name, missing);
      skipped_ += static_cast<std::size_t>(missing);
    }
    num_classes_ = b - a;
    ranges_.reserve(std::min(static_cast<std::size_t>(num_classes_), file_->size()));
    for (int64_t k = a; k < b; ++k) {
      const uint64_t key = static_cast<uint64_t>(k);
      require(file_->contains(key), "{}: record {}: identity record {} named by the header ({}..{}) is missing", name,
              k, k - a, a, b - 1);
      Record r = file_->read(key);
      int64_t first = 0, end = 0;
      require(r.labels.size() >= 2 && integral_label(r.labels[0], &first) && integral_label(r.labels[1], &end) &&
                  first <= end && (first == end || (first >= 1 && end <= a)),
              "{}: record {}: identity {} has no valid [first, end) image range inside 1..{}", name, k, k - a, a - 1);
      ranges_.emplace_back(first, end);
    }
  } else {
    image_keys_ = file_->keys();
  }
}

FaceRecordSet::Image FaceRecordSet::read_image(std::size_t i) const {
  require(i < image_keys_.size(), "{}: image {} out of range ({} images)", path().string(), i, image_keys_.size());
  Image out;
  out.key = image_keys_[i];
  Record r = file_->read(out.key);
  const float raw = r.label();
  require(integral_label(raw, &out.label), "{}: record {}: label {} is not a non-negative integer", path().string(),
          out.key, raw);
  if (has_header_) {
    require(out.label < num_classes_, "{}: record {}: label {} is outside the identity range [0, {})",
            path().string(), out.key, out.label, num_classes_);
    const auto& [first, end] = ranges_[static_cast<std::size_t>(out.label)];
    require(out.key >= first && out.key < end,
            "{}: record {}: label {} disagrees with the identity records (identity {} holds records [{}, {}))",
            path().string(), out.key, out.label, out.label, first, end);
  }
  require(!r.image.empty(), "{}: record {}: no image bytes after the header", path().string(), out.key);
  out.encoded = std::move(r.image);
  return out;
}

}  // namespace qface::data
