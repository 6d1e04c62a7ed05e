// Tensors as lumen's model layer passes them between the protocol (v2.h),
// the batcher and the engines (engine.h): a name, a KServe v2 datatype, a
// shape and the elements as raw bytes (little-endian, row-major).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lumen::models {

enum class DataType {
  kInvalid,
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes,
};

// "FP32", "INT64", "BYTES", ... (the v2 protocol's names). Also takes
// Triton's config names ("TYPE_FP32", "TYPE_STRING"). nullopt if neither.
std::optional<DataType> ParseDataType(std::string_view name);
// The v2 name ("FP32").
const char* DataTypeName(DataType type);
// Bytes per element; 0 for BYTES (variable length) and kInvalid.
size_t ElementSize(DataType type);

struct Tensor {
  std::string name;
  DataType type = DataType::kInvalid;
  std::vector<int64_t> shape;
  // Fixed-size types: NumElements() * ElementSize(type) bytes. BYTES: each
  // element as a 4-byte little-endian length and its bytes (the v2 binary
  // tensor layout).
  std::string data;

  int64_t NumElements() const;

  // Typed access for fixed-size types (no check beyond the size).
  template <typename T>
  const T* As() const {
    return reinterpret_cast<const T*>(data.data());
  }
  template <typename T>
  T* MutableAs() {
    return reinterpret_cast<T*>(data.data());
  }
  // A tensor of `shape` holding `values`.
  template <typename T>
  static Tensor Of(std::string name, DataType type, std::vector<int64_t> shape,
                   const std::vector<T>& values) {
    Tensor t{std::move(name), type, std::move(shape), {}};
    t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return t;
  }
  // BYTES elements, split out of `data`; INVALID_ARGUMENT when the lengths
  // run past the end or the count differs from the shape.
  absl::StatusOr<std::vector<std::string>> Strings() const;
  static Tensor FromStrings(std::string name, std::vector<int64_t> shape,
                            const std::vector<std::string>& values);
  // OK when `data` holds exactly what type and shape say.
  absl::Status CheckSize() const;
};

// A declared input or output: dims of -1 are dynamic.
struct TensorSpec {
  std::string name;
  DataType type = DataType::kInvalid;
  std::vector<int64_t> dims;
};

// "[1,-1,3]"
std::string ShapeString(const std::vector<int64_t>& shape);
// Whether `shape` fits `dims` (same rank; -1 matches any size).
bool ShapeMatches(const std::vector<int64_t>& shape, const std::vector<int64_t>& dims);

}  // namespace lumen::models
