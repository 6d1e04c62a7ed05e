// A test model for the cpp engine and the model host: Y = a * X + b on
// FP32 [batch, 4], with a and b from config.pbtxt's parameters. Parameter
// "delay_ms" makes each run take that long (so batches form), "fail" makes
// loading fail with its text, "load_delay_ms" makes loading slow, "tag_version" adds 1000 × the
// version.
#include <chrono>
#include <thread>

#include "lumen/engine.h"

namespace {

using lumen::models::DataType;
using lumen::models::Tensor;
using lumen::models::TensorSpec;

class Affine : public lumen::models::Engine {
 public:
  static absl::StatusOr<std::unique_ptr<lumen::models::Engine>> Create(
      const lumen::models::LoadContext& c) {
    auto get = [&](const char* k, const char* fallback) {
      auto it = c.parameters.find(k);
      return it == c.parameters.end() ? std::string(fallback) : it->second;
    };
    if (!get("fail", "").empty()) return absl::InvalidArgumentError(get("fail", ""));
    int load_ms = std::stoi(get("load_delay_ms", "0"));  // a slow load, for LOADING
    if (load_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(load_ms));
    auto m = std::make_unique<Affine>();
    m->a_ = std::stof(get("a", "1"));
    m->b_ = std::stof(get("b", "0"));
    // "tag_version": add 1000 × the version, so answers tell versions apart.
    if (!get("tag_version", "").empty()) m->b_ += 1000.0f * static_cast<float>(c.version);
    m->delay_ms_ = std::stoi(get("delay_ms", "0"));
    m->batched_ = c.max_batch_size > 0;
    return m;
  }
  std::vector<TensorSpec> Inputs() const override {
    return {
        {"X", DataType::kFp32, batched_ ? std::vector<int64_t>{-1, 4} : std::vector<int64_t>{4}}};
  }
  std::vector<TensorSpec> Outputs() const override {
    return {
        {"Y", DataType::kFp32, batched_ ? std::vector<int64_t>{-1, 4} : std::vector<int64_t>{4}}};
  }
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& in) override {
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    Tensor y{"Y", DataType::kFp32, in[0].shape, in[0].data};
    float* v = y.MutableAs<float>();
    for (int64_t i = 0; i < y.NumElements(); ++i) v[i] = a_ * v[i] + b_;
    return std::vector<Tensor>{std::move(y)};
  }

 private:
  float a_ = 1, b_ = 0;
  int delay_ms_ = 0;
  bool batched_ = false;
};

}  // namespace

LUMEN_MODEL_CLASS(Affine);
