#include "qface/io/pickle.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "qface/core/error.h"

namespace qface::io {

// ---------------------------------------------------------------- PyValue

namespace {
PyRef make(PyValue::Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}
}  // namespace

PyValue::~PyValue() {
  // Children whose last owner is this value are taken apart here, level by
  // level, instead of by their own destructors recursing into theirs.
  if (items.empty() && dict.empty() && !state) return;
  std::vector<PyRef> pending;
  auto take_children = [&pending](PyValue& v) {
    for (auto& x : v.items) pending.push_back(std::move(x));
    for (auto& [k, x] : v.dict) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(x));
    }
    if (v.state) pending.push_back(std::move(v.state));
    v.items.clear();
    v.dict.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    PyRef v = std::move(pending.back());
    pending.pop_back();
    // use_count() == 1: nobody else can reach it any more (no weak_ptrs exist).
    if (v && v.use_count() == 1) take_children(*v);
  }  // v, now without children, is freed here without recursion
}

PyRef PyValue::none() { return make(Kind::kNone); }
PyRef PyValue::boolean(bool v) {
  auto r = make(Kind::kBool);
  r->b = v;
  return r;
}
PyRef PyValue::integer(int64_t v) {
  auto r = make(Kind::kInt);
  r->i = v;
  return r;
}
PyRef PyValue::real(double v) {
  auto r = make(Kind::kFloat);
  r->f = v;
  return r;
}
PyRef PyValue::str(std::string v) {
  auto r = make(Kind::kStr);
  r->s = std::move(v);
  return r;
}
PyRef PyValue::bytes(std::string v) {
  auto r = make(Kind::kBytes);
  r->s = std::move(v);
  return r;
}
PyRef PyValue::list(std::vector<PyRef> v) {
  auto r = make(Kind::kList);
  r->items = std::move(v);
  return r;
}
PyRef PyValue::tuple(std::vector<PyRef> v) {
  auto r = make(Kind::kTuple);
  r->items = std::move(v);
  return r;
}
PyRef PyValue::dictionary(std::vector<std::pair<PyRef, PyRef>> v) {
  auto r = make(Kind::kDict);
  r->dict = std::move(v);
  return r;
}

PyRef PyValue::get(std::string_view key) const {
  if (kind != Kind::kDict && kind != Kind::kObject) return nullptr;
  for (const auto& [k, v] : dict)
    if (k && (k->kind == Kind::kStr || k->kind == Kind::kBytes) && k->s == key) return v;
  return nullptr;
}

std::string PyValue::qualified_name() const { return module.empty() ? name : module + "." + name; }

std::string PyValue::describe() const {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return b ? "True" : "False";
    case Kind::kInt: return fmt::format("int {}", i);
    case Kind::kFloat: return fmt::format("float {}", f);
    case Kind::kStr: return fmt::format("str '{}'", s.size() > 40 ? s.substr(0, 40) + "..." : s);
    case Kind::kBytes: return fmt::format("bytes({})", s.size());
    case Kind::kList: return fmt::format("list({})", items.size());
    case Kind::kTuple: return fmt::format("tuple({})", items.size());
    case Kind::kDict: return fmt::format("dict({})", dict.size());
    case Kind::kSet: return fmt::format("set({})", items.size());
    case Kind::kGlobal: return "global " + qualified_name();
    case Kind::kObject: return "object " + qualified_name();
    case Kind::kOpaque: return "opaque " + qualified_name();
  }
  return "?";
}

// ---------------------------------------------------------------- unpickler

namespace {

using Kind = PyValue::Kind;

class Unpickler {
 public:
  Unpickler(std::string_view data, const std::string& name, const UnpickleHooks& hooks)
      : d_(data), name_(name), hooks_(hooks), copy_budget_(8 * data.size() + (uint64_t{1} << 20)) {}

  // Whatever the stream built and the result does not hold is taken apart
  // here: on an error every value, on success the unreachable ones. That
  // frees reference cycles (shared_ptr would leak them) before they exist
  // outside.
  ~Unpickler() {
    for (auto& [v, pos] : made_) dismantle(*v);
  }
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  std::size_t position() const { return pos_; }

  PyRef run() {
    while (true) {
      if (pos_ >= d_.size()) error("stream ends without STOP (truncated?)");
      op_pos_ = pos_;
      const unsigned char op = static_cast<unsigned char>(d_[pos_++]);
      switch (op) {
        case 0x80: take(1); break;  // PROTO
        case 0x95: take(8); break;                 // FRAME: frames are transparent here
        case '.': {                                // STOP
          PyRef v = pop();
          check_result(v);
          return v;  // like Python, leftovers below the result are ignored
        }
        case '(': marks_.push_back(stack_.size()); break;
        case '0': pop(); break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        case 'N': push(PyValue::none()); break;
        case 0x88: push(PyValue::boolean(true)); break;
        case 0x89: push(PyValue::boolean(false)); break;
        case 'I': {
          std::string line = read_line();
          if (line == "00") push(PyValue::boolean(false));
          else if (line == "01") push(PyValue::boolean(true));
          else push(PyValue::integer(parse_int(line)));
          break;
        }
        case 'J': push(PyValue::integer(static_cast<int32_t>(le(4)))); break;
        case 'K': push(PyValue::integer(static_cast<int64_t>(le(1)))); break;
        case 'M': push(PyValue::integer(static_cast<int64_t>(le(2)))); break;
        case 'L': {
          std::string line = read_line();
          if (!line.empty() && line.back() == 'L') line.pop_back();
          push(PyValue::integer(parse_int(line)));
          break;
        }
        case 0x8a: push(PyValue::integer(long_bytes(take(le(1))))); break;
        case 0x8b: push(PyValue::integer(long_bytes(take(checked_len(le(4)))))); break;
        case 'F': push(PyValue::real(parse_float(read_line()))); break;
        case 'G': {
          std::string_view b = take(8);
          uint64_t u = 0;
          for (unsigned char c : b) u = (u << 8) | c;
          push(PyValue::real(std::bit_cast<double>(u)));
          break;
        }
        case 'S': push(PyValue::bytes(unquote(read_line()))); break;
        case 'T': push(PyValue::bytes(std::string(take(checked_len(le(4)))))); break;
        case 'U': push(PyValue::bytes(std::string(take(le(1))))); break;
        case 'B': push(PyValue::bytes(std::string(take(checked_len(le(4)))))); break;
        case 'C': push(PyValue::bytes(std::string(take(le(1))))); break;
        case 0x8e: push(PyValue::bytes(std::string(take(checked_len(le(8)))))); break;
        case 0x96: push(PyValue::bytes(std::string(take(checked_len(le(8)))))); break;
        case 'V': push(PyValue::str(read_line())); break;
        case 'X': push(PyValue::str(std::string(take(checked_len(le(4)))))); break;
        case 0x8c: push(PyValue::str(std::string(take(le(1))))); break;
        case 0x8d: push(PyValue::str(std::string(take(checked_len(le(8)))))); break;
        case ']': push(PyValue::list()); break;
        case 'l': push(PyValue::list(pop_mark())); break;
        case ')': push(PyValue::tuple()); break;
        case 't': push(PyValue::tuple(pop_mark())); break;
        case 0x85: tuple_n(1); break;
        case 0x86: tuple_n(2); break;
        case 0x87: tuple_n(3); break;
        case '}': push(PyValue::dictionary()); break;
        case 'd': {
          auto items = pop_mark();
          if (items.size() % 2) error("DICT with an odd number of items");
          auto dict = PyValue::dictionary();
          for (std::size_t i = 0; i < items.size(); i += 2) dict->dict.emplace_back(items[i], items[i + 1]);
          push(dict);
          break;
        }
        case 0x8f: {
          auto s = make(Kind::kSet);
          push(s);
          break;
        }
        case 0x90: {  // ADDITEMS
          auto items = pop_mark();
          PyRef s = top();
          s->items.insert(s->items.end(), items.begin(), items.end());
          break;
        }
        case 0x91: {  // FROZENSET
          auto s = make(Kind::kSet);
          s->items = pop_mark();
          push(s);
          break;
        }
        case 'a': {
          PyRef v = pop();
          append_to(top(), {v});
          break;
        }
        case 'e': {
          auto items = pop_mark();
          append_to(top(), items);
          break;
        }
        case 's': {
          PyRef v = pop(), k = pop();
          set_item(top(), k, v);
          break;
        }
        case 'u': {
          auto items = pop_mark();
          if (items.size() % 2) error("SETITEMS with an odd number of items");
          PyRef target = top();
          for (std::size_t i = 0; i < items.size(); i += 2) set_item(target, items[i], items[i + 1]);
          break;
        }
        case 'c': {
          std::string module = read_line();
          std::string name = read_line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PyRef name = pop(), module = pop();
          if (name->kind != Kind::kStr || module->kind != Kind::kStr) error("STACK_GLOBAL needs two strings");
          push(global(module->s, name->s));
          break;
        }
        case 'R': {
          PyRef args = pop(), fn = pop();
          push(call(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ cls.__new__(cls, *args)
          PyRef args = pop(), cls = pop();
          push(call(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          PyRef kwargs = pop(), args = pop(), cls = pop();
          (void)kwargs;
          push(call(cls, args));
          break;
        }
        case 'i': {  // INST
          std::string module = read_line();
          std::string name = read_line();
          PyRef args = PyValue::tuple(pop_mark());
          push(call(global(module, name), args));
          break;
        }
        case 'o': {  // OBJ
          auto items = pop_mark();
          if (items.empty()) error("OBJ without a class");
          PyRef cls = items.front();
          push(call(cls, PyValue::tuple({items.begin() + 1, items.end()})));
          break;
        }
        case 'b': {  // BUILD
          PyRef state = pop();
          build(top(), state);
          break;
        }
        case 'P': push(persistent(PyValue::str(read_line()))); break;
        case 'Q': push(persistent(pop())); break;
        case 'p': put(static_cast<uint64_t>(parse_int(read_line()))); break;
        case 'q': put(le(1)); break;
        case 'r': put(le(4)); break;
        case 0x94: memo_[memo_.size()] = top(); break;
        case 'g': push(memo(static_cast<uint64_t>(parse_int(read_line())))); break;
        case 'h': push(memo(le(1))); break;
        case 'j': push(memo(le(4))); break;
        case 0x82: case 0x83: case 0x84: error("extension registry codes (EXT1/2/4) are not supported");
        case 0x97: case 0x98: error("out-of-band buffers (protocol 5) are not supported");
        default: error(fmt::format("unknown opcode 0x{:02x}", op));
      }
    }
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("{}: bad pickle at byte {}: {}", name_, op_pos_, what);
  }

  static void dismantle(PyValue& v) {
    v.items.clear();
    v.dict.clear();
    v.state.reset();
  }

  // Walks the result iteratively: a value reached again while it is still on
  // the path is a cycle; a path longer than kMaxPickleDepth is too deep.
  // Heights of finished values are kept, so a shared value (the memo makes
  // DAGs) is walked once: O(values + references). Values the result does not
  // reach are then dismantled (they may hold cycles).
  void check_result(const PyRef& root) {
    struct Frame {
      const PyValue* v;
      std::size_t next = 0;
      std::size_t height = 1;
    };
    auto child_count = [](const PyValue* v) { return v->items.size() + 2 * v->dict.size() + (v->state ? 1 : 0); };
    auto child = [](const PyValue* v, std::size_t i) -> const PyValue* {
      if (i < v->items.size()) return v->items[i].get();
      i -= v->items.size();
      if (i < 2 * v->dict.size()) return (i % 2 ? v->dict[i / 2].second : v->dict[i / 2].first).get();
      return v->state.get();
    };
    std::unordered_map<const PyValue*, std::size_t> height;  // finished values
    std::unordered_set<const PyValue*> on_path;
    std::vector<Frame> path;
    path.push_back({root.get()});
    on_path.insert(root.get());
    while (!path.empty()) {
      Frame& f = path.back();
      if (f.next < child_count(f.v)) {
        const PyValue* c = child(f.v, f.next++);
        if (!c) continue;
        if (on_path.count(c)) error_at(origin(c), fmt::format("{} contains itself (a reference cycle)", c->describe()));
        if (auto it = height.find(c); it != height.end()) {
          if (path.size() + it->second > kMaxPickleDepth)
            error_at(origin(c), fmt::format("values nested deeper than {} levels", kMaxPickleDepth));
          f.height = std::max(f.height, it->second + 1);
          continue;
        }
        if (path.size() >= kMaxPickleDepth)
          error_at(origin(c), fmt::format("values nested deeper than {} levels", kMaxPickleDepth));
        path.push_back({c});
        on_path.insert(c);
        continue;
      }
      const Frame done = f;
      path.pop_back();
      on_path.erase(done.v);
      height.emplace(done.v, done.height);
      if (!path.empty()) path.back().height = std::max(path.back().height, done.height + 1);
    }
    for (auto& [v, pos] : made_)
      if (!height.count(v.get())) dismantle(*v);
    made_.clear();
  }

  // Byte offset of the opcode that first pushed `v` (the STOP opcode when unknown).
  std::size_t origin(const PyValue* v) const {
    for (const auto& [x, pos] : made_)
      if (x.get() == v) return pos;
    return op_pos_;
  }
  [[noreturn]] void error_at(std::size_t pos, const std::string& what) const {
    fail("{}: bad pickle at byte {}: {}", name_, pos, what);
  }

  // Charges copies of existing values (not backed by new input bytes); a
  // stream that copies far more than its size is a decompression bomb.
  void charge(uint64_t n) {
    if (n > copy_budget_) error(fmt::format("copies more values than {} bytes of pickle can hold (decompression bomb?)",
                                            d_.size()));
    copy_budget_ -= n;
  }

  // Up to 40 characters of file text for a message, non-printable bytes escaped.
  static std::string printable(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < 40; ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (std::isprint(c)) out.push_back(static_cast<char>(c));
      else out += fmt::format("\\x{:02x}", c);
    }
    if (s.size() > 40) out += "...";
    return out;
  }

  std::string_view take(uint64_t n) {
    if (n > d_.size() - pos_) error(fmt::format("needs {} more bytes, {} left (truncated?)", n, d_.size() - pos_));
    std::string_view v = d_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  uint64_t le(int bytes) {
    std::string_view b = take(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  uint64_t checked_len(uint64_t n) const {
    if (n > d_.size() - pos_) error(fmt::format("length {} runs past the end ({} bytes left)", n, d_.size() - pos_));
    return n;
  }
  std::string read_line() {
    std::size_t end = d_.find('\n', pos_);
    if (end == std::string_view::npos) error("unterminated text argument");
    std::string s(d_.substr(pos_, end - pos_));
    pos_ = end + 1;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }
  // Protocol 0 decimal text, as Python's int() reads it (optional sign).
  int64_t parse_int(const std::string& s) const {
    std::string_view t(s);
    if (!t.empty() && t.front() == '+') t.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec == std::errc::result_out_of_range) error(fmt::format("integer '{}' does not fit in 64 bits", printable(s)));
    if (ec != std::errc() || p != t.data() + t.size() || t.empty()) error(fmt::format("bad integer '{}'", printable(s)));
    return v;
  }
  // Protocol 0 float text (repr: '2.5', '1e+100', 'inf', 'nan').
  double parse_float(const std::string& s) const {
    std::string_view t(s);
    if (!t.empty() && t.front() == '+') t.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || t.empty()) error(fmt::format("bad float '{}'", printable(s)));
    return v;
  }
  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  int64_t long_bytes(std::string_view b) const {
    if (b.empty()) return 0;
    if (b.size() > 8) error(fmt::format("integer of {} bytes does not fit in 64 bits", b.size()));
    uint64_t v = 0;
    for (int i = static_cast<int>(b.size()) - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    if (b.size() < 8 && (static_cast<unsigned char>(b.back()) & 0x80)) v |= ~uint64_t{0} << (8 * b.size());
    return static_cast<int64_t>(v);
  }
  std::string unquote(const std::string& s) const {
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
      error("STRING argument is not quoted");
    std::string out;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
      if (s[i] != '\\') {
        out.push_back(s[i]);
        continue;
      }
      if (++i + 1 >= s.size()) error("bad escape in STRING");
      char c = s[i];
      switch (c) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'x': {
          if (i + 2 >= s.size()) error("bad \\x escape in STRING");
          const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
          if (hi < 0 || lo < 0) error(fmt::format("bad \\x escape '{}' in STRING", printable(s.substr(i - 1, 4))));
          out.push_back(static_cast<char>(hi * 16 + lo));
          i += 2;
          break;
        }
        default: out.push_back('\\'); out.push_back(c);
      }
    }
    return out;
  }

  void push(PyRef v) {
    // Every value a later opcode can reach (and mutate into a cycle) is pushed first.
    made_.emplace_back(v, op_pos_);
    stack_.push_back(std::move(v));
  }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) error("stack underflow");
    PyRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyRef top() {
    if (stack_.empty()) error("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(std::make_move_iterator(stack_.begin() + m), std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  void tuple_n(std::size_t n) {
    std::vector<PyRef> items(n);
    for (std::size_t i = n; i-- > 0;) items[i] = pop();
    push(PyValue::tuple(std::move(items)));
  }
  // Picklers number memo entries from 0, one per PUT, so a key past the
  // stream's length was never written by one. Checked because LibTorch's own
  // unpickler sizes a table by the key (a 4-byte LONG_BINPUT asked it for
  // 10 GB): qface files pass this reader before LibTorch sees them.
  void put(uint64_t key) {
    if (key > d_.size()) error(fmt::format("memo key {} is past what a {}-byte pickle can number", key, d_.size()));
    memo_[key] = top();
  }

  PyRef memo(uint64_t key) const {
    auto it = memo_.find(key);
    if (it == memo_.end()) error(fmt::format("memo key {} was never stored", key));
    return it->second;
  }

  void append_to(const PyRef& target, const std::vector<PyRef>& items) {
    if (target->kind == Kind::kList || target->kind == Kind::kSet || target->kind == Kind::kObject) {
      // Objects (list subclasses) keep appended items after their call arguments.
      target->items.insert(target->items.end(), items.begin(), items.end());
      return;
    }
    error("APPEND to " + target->describe());
  }
  void set_item(const PyRef& target, const PyRef& k, const PyRef& v) {
    if (target->kind == Kind::kDict || target->kind == Kind::kObject) {
      target->dict.emplace_back(k, v);
      return;
    }
    error("SETITEM on " + target->describe());
  }
  void build(const PyRef& target, const PyRef& state) {
    if (target->kind == Kind::kDict && state->kind == Kind::kDict) {
      if (target == state) return;  // d.update(d) changes nothing (and inserting a vector into itself is UB)
      charge(state->dict.size());
      target->dict.insert(target->dict.end(), state->dict.begin(), state->dict.end());
      return;
    }
    target->state = state;
  }

  PyRef global(const std::string& module, const std::string& name) {
    auto g = make(Kind::kGlobal);
    g->module = module;
    g->name = name;
    return g;
  }

  PyRef persistent(const PyRef& pid) {
    if (hooks_.persistent_load) {
      PyRef v = hooks_.persistent_load(pid);
      if (v) return v;
    }
    auto o = make(Kind::kObject);
    o->name = "<persistent_id>";
    o->items = {pid};
    return o;
  }

  PyRef call(const PyRef& fn, const PyRef& args) {
    if (args->kind != Kind::kTuple) error("call arguments are " + args->describe() + ", expected a tuple");
    std::string module = fn->module, name = fn->name;
    if (fn->kind != Kind::kGlobal) {
      if (fn->kind != Kind::kObject) error("call of " + fn->describe());
      // Calling an object (rare): keep its class name.
    }
    if (hooks_.call) {
      PyRef v = hooks_.call(module, name, args);
      if (v) return v;
    }
    const auto& a = args->items;
    if ((module == "collections" && name == "OrderedDict") || (module == "builtins" && name == "dict") ||
        (module == "__builtin__" && name == "dict")) {
      auto d = PyValue::dictionary();
      if (!a.empty() && (a[0]->kind == Kind::kList || a[0]->kind == Kind::kTuple)) charge(a[0]->items.size());
      if (!a.empty() && (a[0]->kind == Kind::kList || a[0]->kind == Kind::kTuple))
        for (const auto& kv : a[0]->items)
          if (kv->kind == Kind::kTuple && kv->items.size() == 2) d->dict.emplace_back(kv->items[0], kv->items[1]);
      return d;
    }
    if (module == "_codecs" && name == "encode" && !a.empty() && a[0]->kind == Kind::kStr) {
      // Python 3 pickles bytes at protocol 2 as _codecs.encode(latin-1 text, 'latin1').
      charge(a[0]->s.size() / 8);
      return PyValue::bytes(utf8_to_latin1(a[0]->s));
    }
    if ((module == "builtins" || module == "__builtin__") && (name == "bytearray" || name == "bytes")) {
      if (a.empty()) return PyValue::bytes("");
      charge(a[0]->s.size() / 8);
      if (a[0]->kind == Kind::kBytes) return PyValue::bytes(a[0]->s);
      if (a[0]->kind == Kind::kStr) return PyValue::bytes(utf8_to_latin1(a[0]->s));
    }
    if ((module == "builtins" || module == "__builtin__") && (name == "set" || name == "frozenset")) {
      auto s = make(Kind::kSet);
      if (!a.empty() && (a[0]->kind == Kind::kList || a[0]->kind == Kind::kTuple)) {
        charge(a[0]->items.size());
        s->items = a[0]->items;
      }
      return s;
    }
    if ((module == "copy_reg" || module == "copyreg") && name == "_reconstructor" && !a.empty() &&
        a[0]->kind == Kind::kGlobal) {
      module = a[0]->module;
      name = a[0]->name;
    }
    auto o = make(Kind::kObject);
    o->module = module;
    o->name = name;
    charge(a.size());
    o->items = a;
    return o;
  }

  std::string utf8_to_latin1(const std::string& s) const {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if ((c & 0xe0) == 0xc0 && i + 1 < s.size()) {
        unsigned cp = ((c & 0x1f) << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f);
        if (cp > 0xff) error("latin-1 bytes hold a character above U+00FF");
        out.push_back(static_cast<char>(cp));
      } else {
        error("latin-1 bytes hold a character above U+00FF");
      }
    }
    return out;
  }

  std::string_view d_;
  const std::string& name_;
  const UnpickleHooks& hooks_;
  std::size_t pos_ = 0, op_pos_ = 0;
  std::vector<PyRef> stack_;
  std::vector<std::size_t> marks_;
  std::map<uint64_t, PyRef> memo_;
  std::vector<std::pair<PyRef, std::size_t>> made_;  // every pushed value, with the opcode's byte offset
  uint64_t copy_budget_;
};

// ---------------------------------------------------------------- pickler

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void write_value(std::string& out, const PyValue& v) {
  switch (v.kind) {
    case Kind::kNone: out.push_back('N'); return;
    case Kind::kBool: out.push_back(v.b ? '\x88' : '\x89'); return;
    case Kind::kInt:
      if (v.i >= 0 && v.i < 256) {
        out.push_back('K');
        put_le(out, static_cast<uint64_t>(v.i), 1);
      } else if (v.i >= 0 && v.i < 65536) {
        out.push_back('M');
        put_le(out, static_cast<uint64_t>(v.i), 2);
      } else if (v.i >= INT32_MIN && v.i <= INT32_MAX) {
        out.push_back('J');
        put_le(out, static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v.i))), 4);
      } else {
        out.push_back('\x8a');
        out.push_back(8);
        put_le(out, static_cast<uint64_t>(v.i), 8);
      }
      return;
    case Kind::kFloat: {
      out.push_back('G');
      uint64_t u = std::bit_cast<uint64_t>(v.f);
      for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
      return;
    }
    case Kind::kStr:
      out.push_back('X');
      put_le(out, v.s.size(), 4);
      out += v.s;
      return;
    case Kind::kBytes:
      if (v.s.size() < 256) {
        out.push_back('U');
        put_le(out, v.s.size(), 1);
      } else {
        if (v.s.size() > UINT32_MAX) fail("pickle: bytes of {} exceed protocol 2's 4 GiB limit", v.s.size());
        out.push_back('T');
        put_le(out, v.s.size(), 4);
      }
      out += v.s;
      return;
    case Kind::kList:
      out.push_back(']');
      for (std::size_t i = 0; i < v.items.size(); i += 1000) {
        out.push_back('(');
        for (std::size_t j = i; j < std::min(v.items.size(), i + 1000); ++j) write_value(out, *v.items[j]);
        out.push_back('e');
      }
      return;
    case Kind::kTuple:
      if (v.items.empty()) {
        out.push_back(')');
      } else if (v.items.size() <= 3) {
        for (const auto& x : v.items) write_value(out, *x);
        out.push_back(static_cast<char>(0x84 + v.items.size()));
      } else {
        out.push_back('(');
        for (const auto& x : v.items) write_value(out, *x);
        out.push_back('t');
      }
      return;
    case Kind::kDict:
      out.push_back('}');
      if (!v.dict.empty()) {
        out.push_back('(');
        for (const auto& [k, x] : v.dict) {
          write_value(out, *k);
          write_value(out, *x);
        }
        out.push_back('u');
      }
      return;
    default: fail("pickle: cannot write {}", v.describe());
  }
}

}  // namespace

PyRef unpickle(std::string_view data, const std::string& name, const UnpickleHooks& hooks) {
  return Unpickler(data, name, hooks).run();
}

PyRef unpickle(std::string_view data, const std::string& name, const UnpickleHooks& hooks, std::size_t* consumed) {
  Unpickler u(data, name, hooks);
  PyRef v = u.run();
  if (consumed) *consumed = u.position();
  return v;
}

std::string pickle_protocol2(const PyRef& value) {
  std::string out = "\x80\x02";
  write_value(out, *value);
  out.push_back('.');
  return out;
}

}  // namespace qface::io
