// The engine interface: what runs a model. An engine loads one version of
// a model from its directory and configuration, says what tensors it takes
// and gives, and runs a batch of named tensors. Engines register by name
// (config.pbtxt's `backend`, or a `platform` they claim) with LUMEN_ENGINE,
// one folder each under models/engines/: adding one changes nothing else.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <map>
#include "absl/status/statusor.h"
#include "lumen/tensor.h"

namespace lumen::models {
namespace config {
class ModelConfig;  // proto/model_config.proto: config.pbtxt as parsed
}

struct LoadContext {
  std::string model;        // the model's name
  int64_t version = 1;      // which version
  std::string version_dir;  // <repo>/<model>/<version>: the version's files
  std::string model_dir;    // <repo>/<model>: config.pbtxt and shared files (labels)
  const config::ModelConfig* config = nullptr;
  // From the config, for engines that do not read the proto.
  int max_batch_size = 0;
  std::map<std::string, std::string> parameters;
  // The GPU to run on (from the GPUs the node assigned, KIND_GPU), or -1.
  int gpu = -1;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // What the model takes and gives, full shapes: with batching
  // (max_batch_size > 0) the first dimension is the batch, -1. Engines that
  // cannot read this from the model file answer from the config.
  virtual std::vector<TensorSpec> Inputs() const = 0;
  virtual std::vector<TensorSpec> Outputs() const = 0;
  // Runs one batch. `inputs` are checked against Inputs() before this is
  // called (names, types, shapes). May run on several threads at once.
  virtual absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs) = 0;
};

using EngineFactory = std::function<absl::StatusOr<std::unique_ptr<Engine>>(const LoadContext&)>;

// `platforms`: Triton platform names this engine also answers to
// ("onnxruntime_onnx", "pytorch_libtorch").
void RegisterEngine(const std::string& name, std::vector<std::string> platforms,
                    EngineFactory factory);
// The engine for a config (backend first, then platform); NOT_FOUND naming
// the engines there are. An engine not registered yet is loaded from its
// library beside lumen's (liblumen_engine_NAME.so).
absl::StatusOr<EngineFactory> FindEngine(const config::ModelConfig& config);
std::vector<std::string> EngineNames();

// Specs from the config's input/output lists (the batch dimension
// prepended when max_batch_size > 0).
std::vector<TensorSpec> ConfigInputs(const config::ModelConfig& config);
std::vector<TensorSpec> ConfigOutputs(const config::ModelConfig& config);
// A parameter's string_value, or `fallback`.
std::string Parameter(const config::ModelConfig& config, const std::string& key,
                      const std::string& fallback = "");

namespace internal {
struct EngineRegistrar {
  EngineRegistrar(const char* name, std::vector<std::string> platforms, EngineFactory factory) {
    RegisterEngine(name, std::move(platforms), std::move(factory));
  }
};
}  // namespace internal

}  // namespace lumen::models

// LUMEN_ENGINE(onnx, {"onnxruntime_onnx"}, [](const LoadContext& c) { ... });
// (Variadic so that a braced list of platforms may hold commas.)
#define LUMEN_ENGINE(NAME, ...) \
  static ::lumen::models::internal::EngineRegistrar lumen_engine_##NAME(#NAME, __VA_ARGS__)

// A user's C++ class as a model (the `cpp` engine, like Triton's custom
// backends): put it in a shared library in the model's version folder and
// name it in config.pbtxt:
//
//   backend: "cpp"
//   default_model_filename: "libmy_model.so"
//   parameters { key: "class" value { string_value: "MyModel" } }
//
//   class MyModel : public lumen::models::Engine {
//    public:
//     static absl::StatusOr<std::unique_ptr<lumen::models::Engine>> Create(
//         const lumen::models::LoadContext& context);
//     ...Inputs(), Outputs(), Run()...
//   };
//   LUMEN_MODEL_CLASS(MyModel);
//
// Each library keeps its own classes, so two versions of one model may
// define the same class differently.
#define LUMEN_MODEL_CLASS(T)                                                                    \
  extern "C" __attribute__((visibility("default"))) void* lumen_model_class_##T() {             \
    static ::lumen::models::EngineFactory factory = [](const ::lumen::models::LoadContext& c) { \
      return T::Create(c);                                                                      \
    };                                                                                          \
    return &factory;                                                                            \
  }
