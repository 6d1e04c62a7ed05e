// The v2 protocol's HTTP form and the checks both forms share; see v2.h.
// The gRPC conversions are in v2_grpc.cc, which needs the generated code.
#include "models/v2.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "serve/json_util.h"

namespace lumen::models::v2 {

// Tensor data is little-endian; elements are copied in and out of it in the
// host's order.
static_assert(std::endian::native == std::endian::little,
              "the v2 codec assumes a little-endian host");

namespace {

using Json = nlohmann::json;

// How deep request JSON may nest. A tensor of rank 8 nests 9 levels in
// the request; 64 leaves room while keeping recursion over the data (and
// nlohmann's recursive copies and dumps) shallow.
constexpr int kMaxDepth = 64;

// absl::StrCat's argument: the installed abseil has its own string_view,
// which std::string_view does not convert to.
template <typename T>
const T& Arg(const T& v) {
  return v;
}
absl::string_view Arg(std::string_view v) { return absl::string_view(v.data(), v.size()); }

// The smallest magnitude that rounds to infinity as an FP32: FLT_MAX plus
// half its ulp. Anything below rounds to a finite float; the shortest text
// of FLT_MAX itself ("3.4028235e+38") reads as a double a little above it.
constexpr double kFp32Limit = 0x1.ffffffp127;

template <typename... Parts>
absl::Status Bad(std::string_view input, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("input '", Arg(input), "': ", Arg(parts)...));
}

// At most `max` bytes of untrusted text for a message, so that a bad value
// cannot make the error larger than the request.
absl::string_view Clip(std::string_view s, size_t max = 64) { return Arg(s.substr(0, max)); }

// Parses the JSON part. Exceptions are on only to get nlohmann's message
// (where the syntax error is); they are caught here. Too deep a value is
// discarded by the callback rather than built.
absl::StatusOr<Json> ParseJsonPart(std::string_view text) {
  // nlohmann stops at a NUL byte as at the end of the text, so JSON, a NUL
  // and anything would parse, the rest unseen. JSON never holds a raw NUL;
  // one usually means binary data sent without its header length.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request JSON has a NUL byte at offset ", nul,
                     " (binary tensor data needs the Inference-Header-Content-Length header)"));
  }
  bool too_deep = false;
  Json j;
  try {
    j = Json::parse(
        text,
        [&](int depth, Json::parse_event_t event, Json&) {
          if ((event == Json::parse_event_t::object_start ||
               event == Json::parse_event_t::array_start) &&
              depth >= kMaxDepth) {
            too_deep = true;
          }
          return !too_deep;
        },
        /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    std::string_view what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    if (size_t at = what.find("] "); at != std::string_view::npos) what.remove_prefix(at + 2);
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not valid JSON: ", Clip(what, 200)));
  }
  if (too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request JSON nests deeper than ", kMaxDepth, " levels"));
  }
  if (j.is_discarded()) return absl::InvalidArgumentError("the request is not valid JSON");
  return j;
}

// The JSON part's length from Inference-Header-Content-Length.
absl::StatusOr<size_t> JsonLength(std::string_view header, size_t body_size) {
  if (header.empty()) return body_size;
  std::string_view digits = header;
  while (!digits.empty() && (digits.front() == ' ' || digits.front() == '\t')) {
    digits.remove_prefix(1);
  }
  while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) {
    digits.remove_suffix(1);
  }
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || end != digits.data() + digits.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Inference-Header-Content-Length '", Clip(header), "' is not a number"));
  }
  if (ec == std::errc::result_out_of_range || n > body_size) {
    return absl::InvalidArgumentError(absl::StrCat("Inference-Header-Content-Length ", Clip(digits),
                                                   " is larger than the body (", body_size,
                                                   " bytes)"));
  }
  return static_cast<size_t>(n);
}

bool IsV2Name(std::string_view name, DataType* type) {
  std::optional<DataType> t = ParseDataType(name);
  // ParseDataType also takes config names ("TYPE_FP32"); the protocol has
  // only the v2 ones.
  if (!t || name != DataTypeName(*t)) return false;
  *type = *t;
  return true;
}

absl::StatusOr<std::vector<int64_t>> ParseShape(std::string_view input, const Json& j) {
  if (!j.is_array()) return Bad(input, "'shape' is a ", j.type_name(), ", not an array");
  std::vector<int64_t> shape;
  shape.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& d = j[i];
    if (d.is_number_unsigned()) {
      uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Bad(input, "dim ", i, " of its shape (", u, ") is too large");
      }
      shape.push_back(static_cast<int64_t>(u));
    } else if (d.is_number_integer()) {
      int64_t v = d.get<int64_t>();
      if (v < 0) return Bad(input, "dim ", i, " of its shape is negative (", v, ")");
      shape.push_back(v);
    } else {
      return Bad(input, "dim ", i, " of its shape is a ", d.type_name(), ", not an integer");
    }
  }
  return shape;
}

// Leaves of possibly nested arrays: the elements in row-major order.
size_t CountLeaves(const Json& j) {
  if (!j.is_array()) return 1;
  size_t n = 0;
  for (const Json& e : j) n += CountLeaves(e);
  return n;
}

// Whether a JSON integer fits T. Written with `if constexpr` because a
// plain comparison is always true for the widest types (-Wtype-limits).
template <typename T>
bool Fits(uint64_t u) {
  if constexpr (std::is_same_v<T, uint64_t>) {
    return true;
  } else {
    return u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  }
}
template <typename T>
bool Fits(int64_t s) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return true;
  } else if constexpr (std::is_signed_v<T>) {
    return s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           s <= static_cast<int64_t>(std::numeric_limits<T>::max());
  } else {
    return s >= 0 && Fits<T>(static_cast<uint64_t>(s));
  }
}

template <typename T>
absl::Status IntegerElement(const Json& v, DataType type, size_t index, std::string_view input,
                            T* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (!Fits<T>(u)) {
      return Bad(input, "element ", index, " (", u, ") is outside ", DataTypeName(type),
                 "'s range");
    }
    *out = static_cast<T>(u);
    return absl::OkStatus();
  }
  if (v.is_number_integer()) {
    int64_t s = v.get<int64_t>();
    if (!Fits<T>(s)) {
      return Bad(input, "element ", index, " (", s, ") is outside ", DataTypeName(type),
                 "'s range");
    }
    *out = static_cast<T>(s);
    return absl::OkStatus();
  }
  if (v.is_number_float()) {
    return Bad(input, "element ", index, " (", v.get<double>(), ") is not an integer; ",
               DataTypeName(type), " needs integers");
  }
  return Bad(input, "element ", index, " is a ", v.type_name(), "; ", DataTypeName(type),
             " needs integers");
}

// Writes the leaves of `j` as elements of `t` (sized for them already),
// checking each against the datatype.
class JsonFiller {
 public:
  explicit JsonFiller(Tensor* t) : t_(t) {}

  absl::Status Fill(const Json& j) {
    if (j.is_array()) {
      for (const Json& e : j) {
        absl::Status s = Fill(e);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
    absl::Status s = Element(j);
    ++index_;
    return s;
  }

 private:
  template <typename T>
  void Put(T value) {
    std::memcpy(t_->data.data() + index_ * sizeof(T), &value, sizeof(T));
  }

  template <typename T>
  absl::Status Integer(const Json& v) {
    T value{};
    absl::Status s = IntegerElement(v, t_->type, index_, t_->name, &value);
    if (s.ok()) Put(value);
    return s;
  }

  absl::Status Element(const Json& v) {
    switch (t_->type) {
      case DataType::kBool:
        if (!v.is_boolean()) {
          return Bad(t_->name, "element ", index_, " is a ", v.type_name(),
                     "; BOOL needs true or false");
        }
        Put<uint8_t>(v.get<bool>() ? 1 : 0);
        return absl::OkStatus();
      case DataType::kUint8:
        return Integer<uint8_t>(v);
      case DataType::kUint16:
        return Integer<uint16_t>(v);
      case DataType::kUint32:
        return Integer<uint32_t>(v);
      case DataType::kUint64:
        return Integer<uint64_t>(v);
      case DataType::kInt8:
        return Integer<int8_t>(v);
      case DataType::kInt16:
        return Integer<int16_t>(v);
      case DataType::kInt32:
        return Integer<int32_t>(v);
      case DataType::kInt64:
        return Integer<int64_t>(v);
      case DataType::kFp32:
      case DataType::kFp64: {
        if (!v.is_number()) {
          return Bad(t_->name, "element ", index_, " is a ", v.type_name(), "; ",
                     DataTypeName(t_->type), " needs numbers");
        }
        double d = v.get<double>();
        // nlohmann reads a literal too large for a double as infinity.
        bool fits = t_->type == DataType::kFp32 ? std::fabs(d) < kFp32Limit : std::isfinite(d);
        if (!fits) {
          return Bad(t_->name, "element ", index_, " (", d, ") is outside ", DataTypeName(t_->type),
                     "'s range");
        }
        if (t_->type == DataType::kFp32) {
          Put(static_cast<float>(d));
        } else {
          Put(d);
        }
        return absl::OkStatus();
      }
      case DataType::kBytes: {
        if (!v.is_string()) {
          return Bad(t_->name, "element ", index_, " is a ", v.type_name(),
                     "; BYTES needs strings");
        }
        const std::string& s = v.get_ref<const std::string&>();
        if (s.size() > std::numeric_limits<uint32_t>::max()) {
          return Bad(t_->name, "element ", index_, " is longer than BYTES allows (4 GiB)");
        }
        uint32_t len = static_cast<uint32_t>(s.size());
        t_->data.append(reinterpret_cast<const char*>(&len), 4);
        t_->data.append(s);
        return absl::OkStatus();
      }
      case DataType::kFp16:
      case DataType::kInvalid:
        break;
    }
    return Bad(t_->name, DataTypeName(t_->type), " cannot be given as JSON");
  }

  Tensor* t_;
  size_t index_ = 0;
};

// Fills `t` from its JSON "data" (`count` elements, as its shape says).
absl::Status FromJsonData(const Json& data, int64_t count, Tensor* t) {
  if (t->type == DataType::kFp16) {
    return Bad(t->name, "FP16 needs the binary extension (parameters.binary_data_size)");
  }
  size_t leaves = CountLeaves(data);
  if (leaves != static_cast<size_t>(count)) {
    return Bad(t->name, "'data' has ", leaves, " elements; its shape ", ShapeString(t->shape),
               " needs ", count);
  }
  // count <= the body's size (ElementCount's bound), so this is at most
  // 8 bytes per byte of request. BYTES grow as they are appended.
  if (t->type != DataType::kBytes) {
    t->data.resize(static_cast<size_t>(count) * ElementSize(t->type));
  }
  return JsonFiller(t).Fill(data);
}

// Optional member `key` of `j`, or null.
const Json* Member(const Json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

absl::Status ParseInput(const Json& j, size_t index, std::string_view body,
                        std::string_view* binary, Tensor* t) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", index, " is a ", j.type_name(), ", not an object"));
  }
  const Json* name = Member(j, "name");
  if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", index, " has no name (a non-empty string)"));
  }
  t->name = name->get<std::string>();
  const Json* datatype = Member(j, "datatype");
  if (datatype == nullptr) return Bad(t->name, "has no 'datatype'");
  if (!datatype->is_string()) return Bad(t->name, "'datatype' is a ", datatype->type_name());
  if (!IsV2Name(datatype->get_ref<const std::string&>(), &t->type)) {
    return Bad(t->name, "unknown datatype '", Clip(datatype->get_ref<const std::string&>()),
               "' (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES)");
  }
  const Json* shape = Member(j, "shape");
  if (shape == nullptr) return Bad(t->name, "has no 'shape'");
  absl::StatusOr<std::vector<int64_t>> dims = ParseShape(t->name, *shape);
  if (!dims.ok()) return dims.status();
  t->shape = *std::move(dims);
  // Each element takes at least a byte of the body, JSON or binary.
  absl::StatusOr<int64_t> count = internal::ElementCount(t->name, t->shape, body.size());
  if (!count.ok()) return count.status();

  const Json* binary_size = nullptr;
  if (const Json* params = Member(j, "parameters"); params != nullptr) {
    if (!params->is_object()) return Bad(t->name, "'parameters' is a ", params->type_name());
    if (params->contains("shared_memory_region")) {
      return Bad(t->name, "shared memory inputs are not supported");
    }
    binary_size = Member(*params, "binary_data_size");
  }
  const Json* data = Member(j, "data");
  if (binary_size != nullptr) {
    if (data != nullptr) return Bad(t->name, "has both 'data' and parameters.binary_data_size");
    if (!binary_size->is_number_unsigned()) {
      return Bad(t->name, "parameters.binary_data_size is not a non-negative integer");
    }
    uint64_t size = binary_size->get<uint64_t>();
    if (size > binary->size()) {
      return Bad(t->name, "binary_data_size ", size, " runs past the body (", binary->size(),
                 " bytes left)");
    }
    t->data.assign(binary->substr(0, size));
    binary->remove_prefix(size);
    return internal::CheckData(*t);
  }
  if (data == nullptr) {
    return Bad(t->name, "has no 'data' (nor parameters.binary_data_size)");
  }
  return FromJsonData(*data, *count, t);
}

absl::Status ParseOutput(const Json& j, size_t index, bool binary_default, RequestedOutput* out) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", index, " is a ", j.type_name(), ", not an object"));
  }
  const Json* name = Member(j, "name");
  if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", index, " has no name (a non-empty string)"));
  }
  out->name = name->get<std::string>();
  out->binary = binary_default;
  const Json* params = Member(j, "parameters");
  if (params == nullptr) return absl::OkStatus();
  if (!params->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output '", out->name, "': 'parameters' is a ", params->type_name()));
  }
  for (const char* unsupported : {"classification", "shared_memory_region"}) {
    if (params->contains(unsupported)) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", out->name, "': parameter '", unsupported, "' is not supported"));
    }
  }
  if (const Json* b = Member(*params, "binary_data"); b != nullptr) {
    if (!b->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", out->name, "': parameters.binary_data is not a boolean"));
    }
    out->binary = b->get<bool>();
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The fast path: the usual request (inputs with plain ASCII names, shapes,
// datatypes and numeric or boolean data, optionally an id) read straight
// into the tensors' buffers, without a JSON document of one node per
// element. It takes only what it reads exactly as the document path does
// (same number semantics: integers as int64/uint64, else doubles,
// correctly rounded) and hands anything else, errors included, to that
// path, which then says what is wrong. fuzz_v2_infer checks the two agree.

class FastScanner {
 public:
  explicit FastScanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void Space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool Take(char c) {
    Space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool Peek(char c) {
    Space();
    return p_ < end_ && *p_ == c;
  }
  bool AtEnd() {
    Space();
    return p_ == end_;
  }
  // A string of printable ASCII without escapes.
  bool String(std::string_view* out) {
    if (!Take('"')) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      auto c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }
  bool Word(std::string_view word) {
    Space();
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }
  // Passes over an array (nested, of numbers and booleans: no strings or
  // objects) and gives its text, to be read once its tensor's shape and
  // type are known.
  bool SkipArray(std::string_view* out) {
    Space();
    if (p_ == end_ || *p_ != '[') return false;
    const char* start = p_;
    size_t depth = 0;
    for (; p_ < end_; ++p_) {
      char c = *p_;
      if (c == '[') {
        ++depth;
      } else if (c == ']') {
        if (--depth == 0) {
          ++p_;
          *out = std::string_view(start, static_cast<size_t>(p_ - start));
          return true;
        }
      } else if (c == '"' || c == '{' || c == '}') {
        return false;
      }
    }
    return false;
  }
  // A JSON number, valued as nlohmann values it.
  struct Number {
    enum Kind { kSigned, kUnsigned, kFloat } kind;
    int64_t s = 0;
    uint64_t u = 0;
    double d = 0;
    double AsDouble() const {
      return kind == kSigned     ? static_cast<double>(s)
             : kind == kUnsigned ? static_cast<double>(u)
                                 : d;
    }
  };
  bool ReadNumber(Number* n) {
    Space();
    const char* start = p_;
    bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (IsDigit(*p_)) {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    } else {
      return false;
    }
    bool integer = true;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      integer = false;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      integer = false;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (integer) {
      std::from_chars_result r;
      if (negative) {
        n->kind = Number::kSigned;
        r = std::from_chars(start, p_, n->s);
      } else {
        n->kind = Number::kUnsigned;
        r = std::from_chars(start, p_, n->u);
      }
      if (r.ec == std::errc() && r.ptr == p_) return true;
      if (r.ec != std::errc::result_out_of_range) return false;
      // Too large for 64 bits: nlohmann reads it as a double.
    }
    n->kind = Number::kFloat;
    auto r = std::from_chars(start, p_, n->d);
    return r.ec == std::errc() && r.ptr == p_;
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  const char* p_;
  const char* end_;
};

// Writes `data` (a possibly nested array) into `t`, sized for `count`
// elements; false for anything the fast path does not take.
class FastData {
 public:
  FastData(FastScanner* in, Tensor* t, int64_t count) : in_(in), t_(t), count_(count) {}

  bool Read() {
    if (t_->type == DataType::kBytes || t_->type == DataType::kFp16 ||
        t_->type == DataType::kInvalid) {
      return false;
    }
    t_->data.resize(static_cast<size_t>(count_) * ElementSize(t_->type));
    return Array(4) && index_ == count_;
  }

 private:
  bool Array(int depth) {
    if (depth >= kMaxDepth || !in_->Take('[')) return false;
    if (in_->Take(']')) return true;
    do {
      if (!Element(depth)) return false;
    } while (in_->Take(','));
    return in_->Take(']');
  }

  template <typename T>
  void Put(T value) {
    std::memcpy(t_->data.data() + index_ * sizeof(T), &value, sizeof(T));
    ++index_;
  }

  template <typename T>
  bool Integer(const FastScanner::Number& n) {
    if (n.kind == FastScanner::Number::kSigned && Fits<T>(n.s)) {
      Put(static_cast<T>(n.s));
      return true;
    }
    if (n.kind == FastScanner::Number::kUnsigned && Fits<T>(n.u)) {
      Put(static_cast<T>(n.u));
      return true;
    }
    return false;
  }

  bool Element(int depth) {
    if (in_->Peek('[')) return Array(depth + 1);
    if (index_ >= count_) return false;
    if (t_->type == DataType::kBool) {
      if (in_->Word("true")) {
        Put<uint8_t>(1);
        return true;
      }
      if (in_->Word("false")) {
        Put<uint8_t>(0);
        return true;
      }
      return false;
    }
    FastScanner::Number n;
    if (!in_->ReadNumber(&n)) return false;
    switch (t_->type) {
      case DataType::kUint8:
        return Integer<uint8_t>(n);
      case DataType::kUint16:
        return Integer<uint16_t>(n);
      case DataType::kUint32:
        return Integer<uint32_t>(n);
      case DataType::kUint64:
        return Integer<uint64_t>(n);
      case DataType::kInt8:
        return Integer<int8_t>(n);
      case DataType::kInt16:
        return Integer<int16_t>(n);
      case DataType::kInt32:
        return Integer<int32_t>(n);
      case DataType::kInt64:
        return Integer<int64_t>(n);
      case DataType::kFp32: {
        double d = n.AsDouble();
        if (!(std::fabs(d) < kFp32Limit)) return false;
        Put(static_cast<float>(d));
        return true;
      }
      case DataType::kFp64: {
        double d = n.AsDouble();
        if (!std::isfinite(d)) return false;
        Put(d);
        return true;
      }
      default:
        return false;
    }
  }

  FastScanner* in_;
  Tensor* t_;
  int64_t count_;
  int64_t index_ = 0;
};

// One input object: name, datatype, shape, then data (in that order of
// need: data before datatype and shape goes to the document path).
bool FastInput(FastScanner* in, size_t body_size, Tensor* t) {
  if (!in->Take('{')) return false;
  bool name = false, type = false, shape = false, data = false;
  std::string_view data_first;  // "data" came before the shape or type
  do {
    std::string_view key;
    if (!in->String(&key) || !in->Take(':')) return false;
    if (key == "name" && !name) {
      std::string_view v;
      if (!in->String(&v) || v.empty()) return false;
      t->name = std::string(v);
      name = true;
    } else if (key == "datatype" && !type) {
      std::string_view v;
      if (!in->String(&v) || !IsV2Name(v, &t->type)) return false;
      type = true;
    } else if (key == "shape" && !shape) {
      if (!in->Take('[')) return false;
      if (!in->Take(']')) {
        do {
          FastScanner::Number n;
          if (!in->ReadNumber(&n)) return false;
          if (n.kind == FastScanner::Number::kSigned && n.s == 0) {
            t->shape.push_back(0);  // "-0"
          } else if (n.kind == FastScanner::Number::kUnsigned &&
                     n.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            t->shape.push_back(static_cast<int64_t>(n.u));
          } else {
            return false;
          }
        } while (in->Take(','));
        if (!in->Take(']')) return false;
      }
      shape = true;
    } else if (key == "data" && !data) {
      if (name && type && shape) {
        absl::StatusOr<int64_t> count = internal::ElementCount(t->name, t->shape, body_size);
        if (!count.ok() || !FastData(in, t, *count).Read()) return false;
      } else if (!in->SkipArray(&data_first)) {
        return false;
      }
      data = true;
    } else {
      return false;
    }
  } while (in->Take(','));
  if (!in->Take('}') || !data) return false;
  if (data_first.empty()) return true;
  // Keys in another order (serializers that sort them put "data" first).
  if (!name || !type || !shape) return false;
  absl::StatusOr<int64_t> count = internal::ElementCount(t->name, t->shape, body_size);
  FastScanner later(data_first);
  return count.ok() && FastData(&later, t, *count).Read() && later.AtEnd();
}

absl::StatusOr<InferRequest> ParseHttpInferOrThrow(std::string_view body,
                                                   std::string_view header_length) {
  absl::StatusOr<size_t> json_size = JsonLength(header_length, body.size());
  if (!json_size.ok()) return json_size.status();
  absl::StatusOr<Json> parsed = ParseJsonPart(body.substr(0, *json_size));
  if (!parsed.ok()) return parsed.status();
  const Json& j = *parsed;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is a JSON ", j.type_name(), ", not an object"));
  }

  InferRequest req;
  if (const Json* id = Member(j, "id"); id != nullptr) {
    if (!id->is_string()) return absl::InvalidArgumentError("'id' is not a string");
    req.id = id->get<std::string>();
  }
  if (const Json* params = Member(j, "parameters"); params != nullptr) {
    if (!params->is_object()) return absl::InvalidArgumentError("'parameters' is not an object");
    if (const Json* b = Member(*params, "binary_data_output"); b != nullptr) {
      if (!b->is_boolean()) {
        return absl::InvalidArgumentError("parameters.binary_data_output is not a boolean");
      }
      req.binary_output_default = b->get<bool>();
    }
    req.parameters = *params;
  }

  const Json* inputs = Member(j, "inputs");
  if (inputs == nullptr || !inputs->is_array()) {
    return absl::InvalidArgumentError("the request has no 'inputs' array");
  }
  // Binary inputs take their bytes from after the JSON, in input order.
  std::string_view binary = body.substr(*json_size);
  req.inputs.resize(inputs->size());
  for (size_t i = 0; i < inputs->size(); ++i) {
    absl::Status s = ParseInput((*inputs)[i], i, body, &binary, &req.inputs[i]);
    if (!s.ok()) return s;
  }
  absl::Status unique = internal::CheckUniqueNames(req.inputs);
  if (!unique.ok()) return unique;
  if (!binary.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(binary.size(), " bytes after the JSON (", *json_size,
                     " bytes) are left over: no input's binary_data_size covers them"));
  }

  if (const Json* outputs = Member(j, "outputs"); outputs != nullptr) {
    if (!outputs->is_array()) return absl::InvalidArgumentError("'outputs' is not an array");
    req.outputs.resize(outputs->size());
    std::set<std::string_view> seen;
    for (size_t i = 0; i < outputs->size(); ++i) {
      absl::Status s = ParseOutput((*outputs)[i], i, req.binary_output_default, &req.outputs[i]);
      if (!s.ok()) return s;
      if (!seen.insert(req.outputs[i].name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", req.outputs[i].name, "' is asked for twice"));
      }
    }
  }
  return req;
}

// JSON writing. The response is written directly rather than built as a
// nlohmann value: a tensor of a million floats would otherwise become a
// million heap-allocated JSON nodes.

void AppendString(std::string* out, std::string_view s) {
  // nlohmann's escaping; invalid UTF-8 becomes U+FFFD instead of throwing.
  out->append(serve::DumpJson(Json(s)));
}

template <typename T>
void AppendInteger(std::string* out, T value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, end);
}

template <typename T>
void AppendFloat(std::string* out, T value) {
  // JSON has no NaN or infinity.
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  // Shortest text that reads back as the same value.
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  std::string_view text(buf, end - buf);
  // "-0" would read back as the integer 0, losing the sign.
  out->append(text == "-0" ? "-0.0" : text);
}

float HalfToFloat(uint16_t h) {
  const bool negative = (h & 0x8000) != 0;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  float f;
  if (exponent == 0) {
    f = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
  } else if (exponent == 31) {
    f = mantissa == 0 ? std::numeric_limits<float>::infinity()
                      : std::numeric_limits<float>::quiet_NaN();
  } else {
    f = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return negative ? -f : f;
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// The elements of `t` as a JSON array: as many as its data holds.
void AppendData(std::string* out, const Tensor& t) {
  out->push_back('[');
  const std::string& d = t.data;
  if (t.type == DataType::kBytes) {
    size_t at = 0;
    bool first = true;
    while (d.size() - at >= 4) {
      uint32_t len = Load<uint32_t>(d.data() + at);
      if (len > d.size() - at - 4) break;
      if (!first) out->push_back(',');
      first = false;
      AppendString(out, std::string_view(d).substr(at + 4, len));
      at += 4 + len;
    }
    out->push_back(']');
    return;
  }
  const size_t size = ElementSize(t.type);
  const size_t n = size == 0 ? 0 : d.size() / size;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out->push_back(',');
    const char* p = d.data() + i * size;
    switch (t.type) {
      case DataType::kBool:
        out->append(*p != 0 ? "true" : "false");
        break;
      case DataType::kUint8:
        AppendInteger(out, Load<uint8_t>(p));
        break;
      case DataType::kUint16:
        AppendInteger(out, Load<uint16_t>(p));
        break;
      case DataType::kUint32:
        AppendInteger(out, Load<uint32_t>(p));
        break;
      case DataType::kUint64:
        AppendInteger(out, Load<uint64_t>(p));
        break;
      case DataType::kInt8:
        AppendInteger(out, Load<int8_t>(p));
        break;
      case DataType::kInt16:
        AppendInteger(out, Load<int16_t>(p));
        break;
      case DataType::kInt32:
        AppendInteger(out, Load<int32_t>(p));
        break;
      case DataType::kInt64:
        AppendInteger(out, Load<int64_t>(p));
        break;
      case DataType::kFp16:
        AppendFloat(out, HalfToFloat(Load<uint16_t>(p)));
        break;
      case DataType::kFp32:
        AppendFloat(out, Load<float>(p));
        break;
      case DataType::kFp64:
        AppendFloat(out, Load<double>(p));
        break;
      case DataType::kBytes:
      case DataType::kInvalid:
        break;
    }
  }
  out->push_back(']');
}

void AppendShape(std::string* out, const std::vector<int64_t>& shape) {
  out->push_back('[');
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendInteger(out, shape[i]);
  }
  out->push_back(']');
}

}  // namespace

namespace internal {

absl::StatusOr<int64_t> ElementCount(std::string_view name, const std::vector<int64_t>& shape,
                                     uint64_t max_elements) {
  bool zero = false;
  for (int64_t d : shape) {
    if (d < 0) return Bad(name, "shape ", ShapeString(shape), " has a negative dim");
    zero = zero || d == 0;
  }
  if (zero) return 0;
  uint64_t n = 1;
  for (int64_t d : shape) {
    // n * d > max_elements, without overflowing.
    if (n > max_elements / static_cast<uint64_t>(d)) {
      return Bad(name, "shape ", ShapeString(shape),
                 " has more elements than the request can carry (at most ", max_elements, ")");
    }
    n *= static_cast<uint64_t>(d);
  }
  return static_cast<int64_t>(n);
}

absl::Status CheckData(const Tensor& input) {
  const int64_t count = input.NumElements();
  if (count < 0) return Bad(input.name, "bad shape ", ShapeString(input.shape));
  const std::string& d = input.data;
  if (input.type == DataType::kBytes) {
    // Tensor::Strings() would copy every element out; only count them.
    size_t at = 0;
    int64_t n = 0;
    while (at < d.size()) {
      if (d.size() - at < 4) {
        return Bad(input.name, "BYTES element ", n, " has a cut length (", d.size() - at,
                   " of 4 bytes)");
      }
      uint32_t len = Load<uint32_t>(d.data() + at);
      at += 4;
      if (len > d.size() - at) {
        return Bad(input.name, "BYTES element ", n, " says ", len, " bytes but only ",
                   d.size() - at, " follow");
      }
      at += len;
      ++n;
    }
    if (n != count) {
      return Bad(input.name, "has ", n, " BYTES elements; its shape ", ShapeString(input.shape),
                 " needs ", count);
    }
    return absl::OkStatus();
  }
  const size_t size = ElementSize(input.type);
  if (size == 0) return Bad(input.name, "has no valid datatype");
  // count * size compared without overflow.
  if (d.size() % size != 0 || d.size() / size != static_cast<uint64_t>(count)) {
    return Bad(input.name, DataTypeName(input.type), " of shape ", ShapeString(input.shape),
               " needs ", count, " elements of ", size, " bytes; ", d.size(), " bytes given");
  }
  return absl::OkStatus();
}

absl::Status CheckUniqueNames(const std::vector<Tensor>& inputs) {
  std::set<std::string_view> seen;
  for (const Tensor& t : inputs) {
    if (!seen.insert(t.name).second) return Bad(t.name, "is given twice");
  }
  return absl::OkStatus();
}

std::optional<InferRequest> FastParseHttpInfer(std::string_view body) {
  FastScanner in(body);
  InferRequest req;
  if (!in.Take('{')) return std::nullopt;
  bool id = false, inputs = false;
  do {
    std::string_view key;
    if (!in.String(&key) || !in.Take(':')) return std::nullopt;
    if (key == "id" && !id) {
      std::string_view v;
      if (!in.String(&v)) return std::nullopt;
      req.id = std::string(v);
      id = true;
    } else if (key == "inputs" && !inputs) {
      if (!in.Take('[')) return std::nullopt;
      if (!in.Take(']')) {
        do {
          req.inputs.emplace_back();
          if (!FastInput(&in, body.size(), &req.inputs.back())) return std::nullopt;
        } while (in.Take(','));
        if (!in.Take(']')) return std::nullopt;
      }
      inputs = true;
    } else {
      return std::nullopt;
    }
  } while (in.Take(','));
  if (!in.Take('}') || !in.AtEnd() || !inputs || !CheckUniqueNames(req.inputs).ok()) {
    return std::nullopt;
  }
  return req;
}

absl::StatusOr<InferRequest> ParseHttpInferDocument(std::string_view body,
                                                    std::string_view header_length) {
  try {
    return ParseHttpInferOrThrow(body, header_length);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad inference request: ", e.what()));
  }
}

}  // namespace internal

absl::StatusOr<InferRequest> ParseHttpInfer(std::string_view body, std::string_view header_length) {
  // Nothing in the parse is meant to throw; this keeps a surprise (or an
  // allocation failure) from reaching the server's I/O thread.
  try {
    if (header_length.empty()) {
      if (std::optional<InferRequest> fast = internal::FastParseHttpInfer(body)) {
        return *std::move(fast);
      }
    }
    return ParseHttpInferOrThrow(body, header_length);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad inference request: ", e.what()));
  }
}

std::string EncodeHttpInfer(const InferResponse& response, const InferRequest& asked,
                            size_t* header_length) {
  // Which outputs go out, and how.
  std::unordered_map<std::string_view, bool> wanted;
  for (const RequestedOutput& o : asked.outputs) wanted.emplace(o.name, o.binary);
  std::vector<std::pair<const Tensor*, bool>> outputs;
  for (const Tensor& t : response.outputs) {
    if (asked.outputs.empty()) {
      outputs.emplace_back(&t, asked.binary_output_default);
    } else if (auto it = wanted.find(t.name); it != wanted.end()) {
      outputs.emplace_back(&t, it->second);
    }
  }

  std::string out = "{\"model_name\":";
  AppendString(&out, response.model);
  out.append(",\"model_version\":");
  AppendString(&out, response.version);
  if (!response.id.empty()) {
    out.append(",\"id\":");
    AppendString(&out, response.id);
  }
  out.append(",\"outputs\":[");
  bool any_binary = false;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [t, binary] = outputs[i];
    if (i > 0) out.push_back(',');
    out.append("{\"name\":");
    AppendString(&out, t->name);
    out.append(",\"datatype\":\"").append(DataTypeName(t->type)).append("\",\"shape\":");
    AppendShape(&out, t->shape);
    if (binary) {
      any_binary = true;
      out.append(",\"parameters\":{\"binary_data_size\":");
      AppendInteger(&out, t->data.size());
      out.append("}}");
    } else {
      out.append(",\"data\":");
      AppendData(&out, *t);
      out.push_back('}');
    }
  }
  out.append("]}");

  const size_t json_size = out.size();
  if (any_binary) {
    for (const auto& [t, binary] : outputs) {
      if (binary) out.append(t->data);
    }
  }
  if (header_length != nullptr) *header_length = any_binary ? json_size : 0;
  return out;
}

std::string ErrorJson(std::string_view message) {
  return serve::DumpJson(Json{{"error", message}});
}

}  // namespace lumen::models::v2
