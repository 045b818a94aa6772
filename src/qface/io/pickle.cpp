#include "qface/io/pickle.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <map>

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
      : d_(data), name_(name), hooks_(hooks) {}

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
        case 'p': memo_[static_cast<uint64_t>(parse_int(read_line()))] = top(); break;
        case 'q': memo_[le(1)] = top(); break;
        case 'r': memo_[le(4)] = top(); break;
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
  int64_t parse_int(const std::string& s) const {
    try {
      std::size_t used = 0;
      long long v = std::stoll(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
      return v;
    } catch (const std::exception&) {
      error(fmt::format("bad integer '{}'", s));
    }
  }
  double parse_float(const std::string& s) const {
    try {
      return std::stod(s);
    } catch (const std::exception&) {
      error(fmt::format("bad float '{}'", s));
    }
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
          out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
          i += 2;
          break;
        }
        default: out.push_back('\\'); out.push_back(c);
      }
    }
    return out;
  }

  void push(PyRef v) { stack_.push_back(std::move(v)); }
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
      if (!a.empty() && (a[0]->kind == Kind::kList || a[0]->kind == Kind::kTuple))
        for (const auto& kv : a[0]->items)
          if (kv->kind == Kind::kTuple && kv->items.size() == 2) d->dict.emplace_back(kv->items[0], kv->items[1]);
      return d;
    }
    if (module == "_codecs" && name == "encode" && !a.empty() && a[0]->kind == Kind::kStr) {
      // Python 3 pickles bytes at protocol 2 as _codecs.encode(latin-1 text, 'latin1').
      return PyValue::bytes(utf8_to_latin1(a[0]->s));
    }
    if ((module == "builtins" || module == "__builtin__") && (name == "bytearray" || name == "bytes")) {
      if (a.empty()) return PyValue::bytes("");
      if (a[0]->kind == Kind::kBytes) return PyValue::bytes(a[0]->s);
      if (a[0]->kind == Kind::kStr) return PyValue::bytes(utf8_to_latin1(a[0]->s));
    }
    if ((module == "builtins" || module == "__builtin__") && (name == "set" || name == "frozenset")) {
      auto s = make(Kind::kSet);
      if (!a.empty() && (a[0]->kind == Kind::kList || a[0]->kind == Kind::kTuple)) s->items = a[0]->items;
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
