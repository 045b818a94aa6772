// MXNet RecordIO (`train.rec` + `train.idx`), the format of MS1MV2/MS1MV3/
// WebFace (docs/method.md, Data formats), read and written without MXNet.
//
// On disk, each record is
//   uint32 magic = 0xced7230a
//   uint32 lrecord: low 29 bits = payload length, high 3 bits = cflag
//                   (0 whole record; 1 first, 2 middle, 3 last part of a record
//                   split where the payload contained the magic word)
//   payload, zero-padded to a multiple of 4 bytes.
// A payload starts with IRHeader {uint32 flag; float label; uint64 id; uint64 id2}
// (24 bytes, little endian); if flag > 0, `flag` floats of label follow (and
// the scalar label field is then unused); the rest is the encoded image.
// The `.idx` file is text, one `key<TAB>byte_offset` per line.
//
// Face datasets: record 0 is a header with flag > 0 and label = [a, b]:
// images are records 1 .. a-1, records a .. b-1 describe identities (identity
// k = record a+k, label = [first, end) range of its image records).
// Files without such a header (record 0 with flag 0) are plain lists of images.
//
// Readers map the file into memory and are safe to use from many threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qface::data {

inline constexpr uint32_t kRecordMagic = 0xced7230a;
inline constexpr std::size_t kIRHeaderSize = 24;

struct IRHeader {
  uint32_t flag = 0;
  float label = 0;
  uint64_t id = 0;
  uint64_t id2 = 0;
};

// One decoded payload: header, label array (flag floats), encoded image bytes.
struct Record {
  IRHeader header;
  std::vector<float> labels;  // header.flag floats when flag > 0, else empty
  std::string image;
  // The class label: labels[0] when there is a label array, else header.label.
  float label() const { return labels.empty() ? header.label : labels[0]; }
};

// Builds a payload (IRHeader, then the label floats, then the image). When
// `labels` is not empty, header.flag is set to labels.size().
std::string pack_payload(IRHeader header, const std::vector<float>& labels, std::string_view image);
// Parses a payload; `where` (e.g. "train.rec: record 12") prefixes errors.
Record unpack_payload(std::string_view payload, const std::string& where);

// `prefix.rec` -> `prefix.idx` (any extension of `rec` is replaced).
std::filesystem::path idx_path_for(const std::filesystem::path& rec);

struct ReadOptions {
  bool use_index = true;  // read the .idx when present (else scan the records)
  bool skip_bad = false;  // log and count bad idx lines / records instead of throwing
  std::filesystem::path idx;  // default: idx_path_for(rec)
};

// ---------------------------------------------------------------------------
// Low level: a .rec file of keyed records.
class RecordFile {
 public:
  // Maps `rec`. The index is read from options.idx (default idx_path_for(rec))
  // when that file exists; otherwise (or with use_index = false) keys are
  // assigned 0, 1, 2, ... by a sequential scan of the records.
  // Throws qface::Error naming the file, line / record and byte offset on any
  // inconsistency: bad magic, a length past EOF, an idx line that does not
  // parse, a duplicate key, an offset past EOF or not at a record. With
  // skip_bad, bad idx lines are left out, and a scan resynchronizes at the
  // next magic word; skipped() counts them.
  explicit RecordFile(const std::filesystem::path& rec, const ReadOptions& options = {});
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool indexed() const { return indexed_; }  // true when keys come from an .idx file
  std::size_t size() const { return keys_.size(); }
  uint64_t file_size() const { return size_; }
  // Keys in index (or file) order.
  const std::vector<uint64_t>& keys() const { return keys_; }
  bool contains(uint64_t key) const { return offsets_.count(key) != 0; }
  std::size_t skipped() const { return skipped_; }
  uint64_t offset(uint64_t key) const;  // throws when the key is absent

  // The payload of record `key` (continuation parts joined). Thread-safe.
  std::string read_payload(uint64_t key) const;
  Record read(uint64_t key) const;

  // Reads the record starting at byte `offset`; returns its payload and sets
  // `next` to the offset after it (padding included). `what` names the record
  // in errors (e.g. "record 7"). Thread-safe.
  std::string read_at(uint64_t offset, uint64_t* next, const std::string& what) const;

  // Byte offset of the next 4-byte aligned magic word at or after `from`
  // (file_size() when none): where a scan resynchronizes after a bad record.
  uint64_t find_magic(uint64_t from) const;

 private:
  std::filesystem::path path_;
  const char* data_ = nullptr;
  uint64_t size_ = 0;
  bool indexed_ = false;
  std::vector<uint64_t> keys_;
  std::unordered_map<uint64_t, uint64_t> offsets_;
  std::size_t skipped_ = 0;
  void load_index(const std::filesystem::path& idx, bool skip_bad);
  void scan_keys(bool skip_bad);
};

// Writes `prefix.rec` and `prefix.idx` atomically: both go to temporary files
// that commit() fsyncs, then it removes the old .idx and renames the .rec
// into place first and the .idx last. A crash at any point leaves the old
// pair, or the new .rec without an .idx (readers scan it), never a new .rec
// with an old .idx. Destroying an uncommitted writer removes the temporaries.
class RecordWriter {
 public:
  explicit RecordWriter(const std::filesystem::path& rec, const std::filesystem::path& idx = {});
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Appends a record with `key` (written as its own .idx line); returns its byte offset.
  uint64_t write(uint64_t key, std::string_view payload);
  // Overwrites, in place, a record written earlier whose payload has exactly
  // the same length (used to fill in a header reserved at the start).
  void rewrite(uint64_t offset, std::string_view payload);
  uint64_t bytes_written() const { return pos_; }
  void commit();

 private:
  std::filesystem::path rec_, idx_, rec_tmp_, idx_tmp_;
  int fd_ = -1;
  uint64_t pos_ = 0;
  std::string idx_text_;
  std::unordered_map<uint64_t, bool> keys_;
};

// ---------------------------------------------------------------------------
// Face datasets (header record 0 + image records + identity records).

// Writes a face dataset the way InsightFace's tools lay it out:
//   FaceRecordWriter w("out/train.rec");
//   for (...) w.add_image(jpeg_bytes, label);   // labels non-decreasing: one
//                                               // contiguous run per identity
//   w.finish();                                 // identity records, header, commit
// Record 0 (flag 2, label [1 + images, 1 + images + identities]) is reserved
// first and filled in by finish(); image k (0-based) is key 1 + k with
// IRHeader {flag 0, label, id = key, id2 = 0}; identity c is key
// 1 + images + c with label [first, end) of its image keys (an identity with
// no image gets an empty range). Labels are stored as float32, exact up to 2^24.
class FaceRecordWriter {
 public:
  explicit FaceRecordWriter(const std::filesystem::path& rec, const std::filesystem::path& idx = {});
  // Appends an image of class `label`; returns its key. Throws qface::Error
  // when `label` is negative, not representable exactly, or smaller than the
  // previous one (identities must be contiguous).
  uint64_t add_image(std::string_view encoded, int64_t label);
  // Writes identity records for classes 0 .. max(num_classes, max label + 1) - 1
  // and the header, then commits both files.
  void finish(int64_t num_classes = 0);
  uint64_t images() const { return images_; }

 private:
  RecordWriter writer_;
  uint64_t images_ = 0;
  int64_t last_label_ = -1;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // per class [first key, end key)
  bool finished_ = false;
};

// A face dataset opened from a .rec (+ .idx). Image i (0-based, in key order)
// is read with read_image(i). With a header record, the image keys are
// 1 .. a-1 and the identity records give the classes; without one, every
// record is an image and classes are 1 + the largest label seen on demand.
class FaceRecordSet {
 public:
  explicit FaceRecordSet(const std::filesystem::path& rec, const ReadOptions& options = {});

  const RecordFile& file() const { return *file_; }
  const std::filesystem::path& path() const { return file_->path(); }
  bool has_header() const { return has_header_; }
  std::size_t num_images() const { return image_keys_.size(); }
  // Identities from the identity records (has_header()), else -1 (unknown).
  int64_t num_classes() const { return num_classes_; }
  uint64_t image_key(std::size_t i) const { return image_keys_.at(i); }
  // [first, end) image keys of identity c (has_header() only).
  std::pair<uint64_t, uint64_t> identity_range(int64_t c) const { return ranges_.at(static_cast<std::size_t>(c)); }
  // Records / idx lines found bad and left out while opening (skip_bad).
  std::size_t skipped() const { return file_->skipped() + skipped_; }

  struct Image {
    uint64_t key = 0;
    int64_t label = 0;
    std::string encoded;
  };
  // Reads image i. Throws qface::Error naming the file and record key when
  // the record is malformed, the label is not a non-negative integer, or
  // (with a header) the label is not in [0, num_classes()) or the key lies
  // outside that identity's [first, end) range.
  Image read_image(std::size_t i) const;

 private:
  std::unique_ptr<RecordFile> file_;
  bool has_header_ = false;
  int64_t num_classes_ = -1;
  std::vector<uint64_t> image_keys_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
  std::size_t skipped_ = 0;
};

}  // namespace qface::data
