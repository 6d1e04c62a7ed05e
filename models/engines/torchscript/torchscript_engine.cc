// The `torchscript` engine: TorchScript modules through libtorch
// (torch::jit::load). Answers to Triton's platform "pytorch_libtorch" and
// backend "pytorch".
//
//   file:       <version_dir>/<default_model_filename or model.pt>
//   specs:      from config.pbtxt's input/output lists (required)
//   inputs:     passed positionally to forward(), in config order, or by the
//               index in Triton's names (INPUT__0, INPUT__1, ...) when every
//               input is named so
//   outputs:    forward() returns a tensor, a tuple or list of tensors, or a
//               dict of name -> tensor; mapped to the config's outputs in order
//               (or by OUTPUT__<i> index, or by name for a dict) and converted
//               to the config's data_type
//   types:      BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, FP64
//   device:     cuda:<gpu> when the node assigned a GPU and libtorch has CUDA,
//               else the CPU
//   parameters: "threads" (default 1): libtorch's intra-op threads, set on
//               each thread that runs the model (OpenMP keeps the count per
//               thread: a serving thread would otherwise fork one per core
//               for every operator, 2-5x the forward of a small model).
//               "warmup" (default
//               "2"): batches of zeros run at load (the profiling executor
//               optimizes after two), 0 to skip
//
// All of libtorch stays in this file: its headers are slow to compile.
#include <torch/cuda.h>
#include <torch/script.h>

#include <ATen/Parallel.h>

#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "lumen/engine.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

std::string Param(const LoadContext& ctx, const std::string& key, const std::string& fallback) {
  auto it = ctx.parameters.find(key);
  if (it != ctx.parameters.end()) return it->second;
  return ctx.config ? Parameter(*ctx.config, key, fallback) : fallback;
}

std::optional<torch::ScalarType> TorchType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return torch::kBool;
    case DataType::kUint8:
      return torch::kUInt8;
    case DataType::kInt8:
      return torch::kInt8;
    case DataType::kInt16:
      return torch::kInt16;
    case DataType::kInt32:
      return torch::kInt32;
    case DataType::kInt64:
      return torch::kInt64;
    case DataType::kFp16:
      return torch::kFloat16;
    case DataType::kFp32:
      return torch::kFloat32;
    case DataType::kFp64:
      return torch::kFloat64;
    default:
      return std::nullopt;
  }
}

// c10::Error's message without the C++ backtrace libtorch appends.
std::string TorchError(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

// A TorchScript interpreter error, shortened to its last line (the
// exception) and where in the model's source it came from:
//   RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x5 and 4x8)
//   (at File "<string>", line 3, in forward)
std::string ScriptError(const std::string& what) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= what.size()) {
    size_t end = what.find('\n', start);
    if (end == std::string::npos) end = what.size();
    std::string line = what.substr(start, end - start);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    start = end + 1;
  }
  if (lines.size() <= 1) return what;
  std::string where;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (lines[i].find("Traceback of TorchScript") != std::string::npos &&
        lines[i + 1].find("File ") != std::string::npos) {
      where = lines[i + 1];  // the last traceback (original code) wins
    }
  }
  size_t first = where.find_first_not_of(' ');
  if (first != std::string::npos) where.erase(0, first);
  return where.empty() ? lines.back() : absl::StrCat(lines.back(), " (at ", where, ")");
}

// Where each name goes in forward()'s arguments or results: the <i> of
// Triton's NAME__<i> when every name has a distinct one below the count,
// else the position in the list.
std::vector<size_t> Positions(const std::vector<TensorSpec>& specs) {
  std::vector<size_t> positions(specs.size());
  std::vector<bool> taken(specs.size(), false);
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string& name = specs[i].name;
    size_t at = name.rfind("__");
    size_t index;
    if (at == std::string::npos || !absl::SimpleAtoi(name.substr(at + 2), &index) ||
        index >= specs.size() || taken[index]) {
      for (size_t j = 0; j < specs.size(); ++j) positions[j] = j;
      return positions;
    }
    taken[index] = true;
    positions[i] = index;
  }
  return positions;
}

class TorchScriptEngine : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Load(const LoadContext& ctx);

  std::vector<TensorSpec> Inputs() const override { return inputs_; }
  std::vector<TensorSpec> Outputs() const override { return outputs_; }
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs) override;

 private:
  absl::StatusOr<std::vector<Tensor>> Forward(const std::vector<Tensor>& inputs);

  std::string model_;
  int threads_ = 1;
  torch::Device device_{torch::kCPU};
  torch::jit::Module module_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::vector<size_t> input_positions_;
  std::vector<size_t> output_positions_;
};

absl::StatusOr<std::unique_ptr<Engine>> TorchScriptEngine::Load(const LoadContext& ctx) {
  if (ctx.config == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model, "': the torchscript engine needs the model's config.pbtxt"));
  }
  const config::ModelConfig& config = *ctx.config;
  auto engine = std::make_unique<TorchScriptEngine>();
  engine->model_ = ctx.model;
  const std::string file =
      ctx.version_dir + "/" +
      (config.default_model_filename().empty() ? "model.pt" : config.default_model_filename());
  if (!FileExists(file)) {
    return absl::NotFoundError(absl::StrCat(
        "model '", ctx.model, "' version ", ctx.version, ": no TorchScript file ", file,
        " (save the module there with torch.jit.save, or name its file with "
        "default_model_filename in config.pbtxt)"));
  }
  engine->inputs_ = ConfigInputs(config);
  engine->outputs_ = ConfigOutputs(config);
  if (engine->inputs_.empty() || engine->outputs_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model,
        "': a TorchScript file does not say what its forward() takes and "
        "returns, and config.pbtxt lists no ",
        engine->inputs_.empty() ? "input" : "output",
        "; add input [...] and output [...] entries in forward()'s order (Triton's names "
        "INPUT__0, OUTPUT__0, ... or any names), e.g. input [{ name: \"INPUT__0\" data_type: "
        "TYPE_FP32 dims: [ 4 ] }]"));
  }
  for (const auto* list : {&engine->inputs_, &engine->outputs_}) {
    for (const TensorSpec& s : *list) {
      if (!TorchType(s.type)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model '", ctx.model, "': tensor '", s.name, "' has data_type ", DataTypeName(s.type),
            ", which the torchscript engine does not handle (it takes BOOL, UINT8, INT8, INT16, "
            "INT32, INT64, FP16, FP32 and FP64)"));
      }
    }
  }
  engine->input_positions_ = Positions(engine->inputs_);
  engine->output_positions_ = Positions(engine->outputs_);

  int threads = 1;
  const std::string threads_param = Param(ctx, "threads", "1");
  if (!absl::SimpleAtoi(threads_param, &threads) || threads < 1 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter threads='",
                                                   threads_param, "' is not a thread count"));
  }
  int warmup = 2;
  const std::string warmup_param = Param(ctx, "warmup", "2");
  if (warmup_param == "false") {
    warmup = 0;
  } else if (!absl::SimpleAtoi(warmup_param, &warmup) || warmup < 0 || warmup > 100) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter warmup='",
                                                   warmup_param, "' is not a count from 0 to 100"));
  }

  try {
    engine->threads_ = threads;
    at::set_num_threads(threads);
    if (ctx.gpu >= 0) {
      if (torch::cuda::is_available()) {
        engine->device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.gpu));
      } else {
        LUMEN_LOG_WARN(
            "torchscript engine: no CUDA in libtorch, running on the CPU model={} gpu={}",
            ctx.model, ctx.gpu);
      }
    }
    engine->module_ = torch::jit::load(file, engine->device_);
    engine->module_.eval();
    if (!engine->module_.find_method("forward")) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", ctx.model, "': ", file, " has no forward() method"));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model, "': libtorch cannot load ", file,
        " as TorchScript (save it with torch.jit.save(torch.jit.script(m)) or torch.jit.trace): ",
        TorchError(e)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': loading ", file, ": ", e.what()));
  }

  // Batches of zeros shaped as the config says: check the config against
  // forward() now, and let the profiling executor optimize before the first
  // request. Skipped when a dimension other than the batch is dynamic.
  std::vector<Tensor> zeros;
  for (const TensorSpec& s : engine->inputs_) {
    std::vector<int64_t> shape = s.dims;
    if (config.max_batch_size() > 0 && !shape.empty()) shape[0] = 1;
    bool dynamic = false;
    for (int64_t d : shape) dynamic |= d < 0;
    if (dynamic) {
      zeros.clear();
      break;
    }
    Tensor t{s.name, s.type, shape, {}};
    t.data.assign(t.NumElements() * ElementSize(s.type), '\0');
    zeros.push_back(std::move(t));
  }
  for (int i = 0; i < warmup && !zeros.empty(); ++i) {
    auto result = engine->Run(zeros);
    if (!result.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", ctx.model, "': a trial batch of zeros shaped as config.pbtxt says failed (",
          result.status().message(),
          "); check the config's inputs and outputs against forward(), or set parameter "
          "warmup=\"0\""));
    }
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

absl::StatusOr<std::vector<Tensor>> TorchScriptEngine::Run(const std::vector<Tensor>& inputs) {
  // Inputs passed the spec check, so what forward() throws is mostly an
  // input it cannot take (a dynamic dimension of the wrong size, an index
  // out of range): INVALID_ARGUMENT.
  try {
    return Forward(inputs);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_, "': forward() failed on this batch: ", ScriptError(TorchError(e))));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_, "': forward() failed on this batch: ", ScriptError(e.what())));
  }
}

absl::StatusOr<std::vector<Tensor>> TorchScriptEngine::Forward(const std::vector<Tensor>& inputs) {
  thread_local int threads_here = 0;
  if (threads_here != threads_) {
    at::set_num_threads(threads_);
    threads_here = threads_;
  }
  c10::InferenceMode guard;
  std::vector<torch::jit::IValue> args(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorSpec& spec = inputs_[i];
    const Tensor* t = nullptr;
    for (const Tensor& in : inputs) {
      if (in.name == spec.name) t = &in;
    }
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", model_, "' takes input '", spec.name, "', which is missing"));
    }
    std::optional<torch::ScalarType> type = TorchType(t->type);
    if (!type) {
      return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' is ",
                                                     DataTypeName(t->type), "; model '", model_,
                                                     "' takes ", DataTypeName(spec.type)));
    }
    const int64_t n = t->NumElements();
    if (n < 0 || t->data.size() != static_cast<size_t>(n) * ElementSize(t->type)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' holds ", t->data.size(),
                                                     " bytes, not what ", DataTypeName(t->type),
                                                     ShapeString(t->shape), " needs"));
    }
    // A copy: the model may write into its inputs, and the caller's are const.
    torch::Tensor tensor = torch::empty(t->shape, torch::TensorOptions().dtype(*type));
    if (n > 0) std::memcpy(tensor.data_ptr(), t->data.data(), t->data.size());
    if (*type != *TorchType(spec.type)) tensor = tensor.to(*TorchType(spec.type));
    if (device_ != torch::kCPU) tensor = tensor.to(device_);
    args[input_positions_[i]] = std::move(tensor);
  }

  torch::jit::IValue result = module_.forward(std::move(args));

  std::vector<torch::jit::IValue> values;
  std::vector<std::string> dict_keys;
  if (result.isTensor()) {
    values.push_back(result);
  } else if (result.isTuple()) {
    for (const auto& v : result.toTupleRef().elements()) values.push_back(v);
  } else if (result.isList()) {
    for (const auto& v : result.toListRef()) values.push_back(v);
  } else if (result.isGenericDict()) {
    for (const auto& entry : result.toGenericDict()) {
      if (!entry.key().isString()) break;
      dict_keys.push_back(entry.key().toStringRef());
      values.push_back(entry.value());
    }
  } else {
    return absl::InternalError(absl::StrCat("model '", model_, "': forward() returned a ",
                                            result.tagKind(),
                                            "; the engine takes a tensor, a tuple or list of "
                                            "tensors, or a dict of name to tensor"));
  }

  std::vector<Tensor> out;
  out.reserve(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const TensorSpec& spec = outputs_[i];
    const torch::jit::IValue* value = nullptr;
    if (!dict_keys.empty()) {
      for (size_t k = 0; k < dict_keys.size(); ++k) {
        if (dict_keys[k] == spec.name) value = &values[k];
      }
      if (value == nullptr) {
        return absl::InternalError(absl::StrCat(
            "model '", model_, "': forward() returned a dict ", "without the output '", spec.name,
            "' config.pbtxt names (it has: ", absl::StrJoin(dict_keys, ", "), ")"));
      }
    } else {
      if (output_positions_[i] >= values.size()) {
        return absl::InternalError(absl::StrCat("model '", model_, "': forward() returned ",
                                                values.size(), " value(s) but config.pbtxt ",
                                                "declares ", outputs_.size(),
                                                " outputs; make them agree"));
      }
      value = &values[output_positions_[i]];
    }
    if (!value->isTensor()) {
      return absl::InternalError(absl::StrCat("model '", model_, "': output '", spec.name,
                                              "' is a ", value->tagKind(), ", not a tensor"));
    }
    torch::Tensor tensor = value->toTensor().to(torch::kCPU, *TorchType(spec.type)).contiguous();
    Tensor t;
    t.name = spec.name;
    t.type = spec.type;
    t.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
    t.data.assign(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadTorchScript(const LoadContext& ctx) {
  try {
    return TorchScriptEngine::Load(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", ctx.model, "': the torchscript engine failed to load: ", e.what()));
  }
}

}  // namespace

LUMEN_ENGINE(torchscript, (std::vector<std::string>{"pytorch_libtorch", "pytorch"}),
             LoadTorchScript);
// FindEngine looks a config's `backend:` up by engine name only, so Triton's
// backend "pytorch" needs a name of its own too.
LUMEN_ENGINE(pytorch, {}, LoadTorchScript);

}  // namespace lumen::models
