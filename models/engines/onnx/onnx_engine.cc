// The `onnx` engine: ONNX models through OpenCV's DNN module
// (cv::dnn::readNetFromONNX), on the CPU. Answers to Triton's platform
// "onnxruntime_onnx" and backend "onnxruntime", so a Triton repository's
// ONNX models load unchanged.
//
//   file:       <version_dir>/<default_model_filename or model.onnx>
//   specs:      from config.pbtxt's input/output lists (required: OpenCV does
//               not report a graph's input names and shapes)
//   types:      FP32 in and out; other numeric types are converted to and from
//               FP32 at the edge (INT64 ids above 2^24 lose precision)
//   parameters: "instances" (default 2): how many copies of the network run
//               batches at once (cv::dnn::Net is not thread-safe, so each copy
//               sits behind a mutex); "warmup" ("true"): run one batch of
//               zeros at load to check the config's names against the graph
//
// A batch runs as one forward pass. OpenCV's own thread pool runs inside it
// (cv::setNumThreads is process-wide and left alone).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
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

bool IsNumeric(DataType t) { return t != DataType::kInvalid && t != DataType::kBytes; }

// Converts `n` elements of type `type` at `src` to float.
void ToFloat(DataType type, const char* src, size_t n, float* dst) {
  auto convert = [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, src + i * sizeof(T), sizeof(T));
      dst[i] = static_cast<float>(v);
    }
  };
  switch (type) {
    case DataType::kFp32:
      std::memcpy(dst, src, n * sizeof(float));
      break;
    case DataType::kFp64:
      convert(double{});
      break;
    case DataType::kFp16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + i * 2, 2);
        dst[i] = static_cast<float>(cv::float16_t::fromBits(bits));
      }
      break;
    case DataType::kBool:
      convert(uint8_t{});
      break;
    case DataType::kUint8:
      convert(uint8_t{});
      break;
    case DataType::kUint16:
      convert(uint16_t{});
      break;
    case DataType::kUint32:
      convert(uint32_t{});
      break;
    case DataType::kUint64:
      convert(uint64_t{});
      break;
    case DataType::kInt8:
      convert(int8_t{});
      break;
    case DataType::kInt16:
      convert(int16_t{});
      break;
    case DataType::kInt32:
      convert(int32_t{});
      break;
    case DataType::kInt64:
      convert(int64_t{});
      break;
    default:
      break;
  }
}

// Converts `n` floats to `type`, appended to `out` as raw bytes.
void FromFloat(DataType type, const float* src, size_t n, std::string* out) {
  out->resize(n * ElementSize(type));
  char* dst = out->data();
  auto convert = [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < n; ++i) {
      T v = static_cast<T>(src[i]);
      std::memcpy(dst + i * sizeof(T), &v, sizeof(T));
    }
  };
  switch (type) {
    case DataType::kFp32:
      std::memcpy(dst, src, n * sizeof(float));
      break;
    case DataType::kFp64:
      convert(double{});
      break;
    case DataType::kFp16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits = cv::float16_t(src[i]).bits();
        std::memcpy(dst + i * 2, &bits, 2);
      }
      break;
    case DataType::kBool:
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0.0f;
      break;
    case DataType::kUint8:
      convert(uint8_t{});
      break;
    case DataType::kUint16:
      convert(uint16_t{});
      break;
    case DataType::kUint32:
      convert(uint32_t{});
      break;
    case DataType::kUint64:
      convert(uint64_t{});
      break;
    case DataType::kInt8:
      convert(int8_t{});
      break;
    case DataType::kInt16:
      convert(int16_t{});
      break;
    case DataType::kInt32:
      convert(int32_t{});
      break;
    case DataType::kInt64:
      convert(int64_t{});
      break;
    default:
      break;
  }
}

// The shape to report for an output of `total` elements: the config's dims
// (batch dimension = `batch`, one other -1 inferred) when they account for
// every element, else what OpenCV produced.
std::vector<int64_t> OutputShape(const TensorSpec& spec, bool batched, int64_t batch,
                                 const std::vector<int64_t>& produced, int64_t total) {
  std::vector<int64_t> dims = spec.dims;
  if (batched && !dims.empty()) dims[0] = batch;
  int unknown = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      if (unknown >= 0) return produced;
      unknown = static_cast<int>(i);
    } else {
      known *= dims[i];
    }
  }
  if (unknown >= 0) {
    if (known == 0 || total % known != 0) return produced;
    dims[unknown] = total / known;
    known *= dims[unknown];
  }
  return known == total ? dims : produced;
}

std::string CvError(const cv::Exception& e) { return e.err.empty() ? e.what() : e.err; }

class OnnxEngine : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Load(const LoadContext& ctx);

  std::vector<TensorSpec> Inputs() const override { return inputs_; }
  std::vector<TensorSpec> Outputs() const override { return outputs_; }
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs) override;

 private:
  struct Instance {
    absl::Mutex mu;
    cv::dnn::Net net ABSL_GUARDED_BY(mu);
  };

  // A free instance, locked; waits for one (round robin) when all are busy.
  Instance* Acquire() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  absl::StatusOr<std::vector<Tensor>> Forward(Instance* instance, const std::vector<Tensor>& inputs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(instance->mu);

  std::string model_;
  std::string file_;
  bool batched_ = false;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::vector<cv::String> output_names_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::atomic<size_t> next_{0};
};

absl::StatusOr<std::unique_ptr<Engine>> OnnxEngine::Load(const LoadContext& ctx) {
  auto engine = std::make_unique<OnnxEngine>();
  engine->model_ = ctx.model;
  if (ctx.config == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': the onnx engine needs the model's config.pbtxt"));
  }
  const config::ModelConfig& config = *ctx.config;
  const std::string filename =
      config.default_model_filename().empty() ? "model.onnx" : config.default_model_filename();
  engine->file_ = ctx.version_dir + "/" + filename;
  if (!FileExists(engine->file_)) {
    return absl::NotFoundError(absl::StrCat(
        "model '", ctx.model, "' version ", ctx.version, ": no ONNX file ", engine->file_,
        " (put the model there, or name its file with default_model_filename in config.pbtxt)"));
  }
  engine->batched_ = config.max_batch_size() > 0;
  engine->inputs_ = ConfigInputs(config);
  engine->outputs_ = ConfigOutputs(config);
  if (engine->inputs_.empty() || engine->outputs_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model, "': the onnx engine takes the model's tensors from config.pbtxt, ",
        "which lists no ", engine->inputs_.empty() ? "input" : "output",
        "; add input [...] and output [...] entries with the graph's tensor names, data_type and "
        "dims (e.g. input [{ name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 4 ] }])"));
  }
  for (const auto* list : {&engine->inputs_, &engine->outputs_}) {
    for (const TensorSpec& s : *list) {
      if (!IsNumeric(s.type)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model '", ctx.model, "': tensor '", s.name, "' has data_type ", DataTypeName(s.type),
            "; the onnx engine (OpenCV DNN) handles numeric tensors only (TYPE_FP32 best)"));
      }
    }
  }
  for (const TensorSpec& s : engine->outputs_) engine->output_names_.push_back(s.name);

  int instances = 2;
  const std::string n = Param(ctx, "instances", "2");
  if (!absl::SimpleAtoi(n, &instances) || instances < 1 || instances > 64) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter instances='",
                                                   n, "' is not a count from 1 to 64"));
  }
  if (ctx.gpu >= 0) {
    LUMEN_LOG_INFO("onnx engine runs on the CPU (OpenCV DNN without CUDA) model={} gpu={}",
                   ctx.model, ctx.gpu);
  }
  try {
    for (int i = 0; i < instances; ++i) {
      auto instance = std::make_unique<Instance>();
      absl::MutexLock lock(&instance->mu);
      instance->net = cv::dnn::readNetFromONNX(engine->file_);
      if (instance->net.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", ctx.model, "': OpenCV read no network from ", engine->file_));
      }
      instance->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
      instance->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
      if (i == 0) {
        for (const TensorSpec& s : engine->outputs_) {
          // OpenCV also takes "<layer>.<i>" for a layer's i-th output.
          std::string layer = s.name;
          size_t dot = layer.rfind('.');
          if (dot != std::string::npos && dot + 1 < layer.size() &&
              layer.find_first_not_of("0123456789", dot + 1) == std::string::npos &&
              instance->net.getLayerId(layer) < 0) {
            layer.resize(dot);
          }
          if (instance->net.getLayerId(layer) < 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                "model '", ctx.model, "': config.pbtxt names output '", s.name, "' but ",
                engine->file_, " has no tensor of that name; its outputs are: ",
                absl::StrJoin(instance->net.getUnconnectedOutLayersNames(), ", ")));
          }
        }
      }
      engine->instances_.push_back(std::move(instance));
    }
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': OpenCV cannot load ",
                                                   engine->file_, " as ONNX: ", CvError(e)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': loading ", engine->file_, ": ", e.what()));
  }

  // A trial batch of zeros checks names and shapes now rather than at the
  // first request; skipped when a dimension other than the batch is dynamic.
  if (Param(ctx, "warmup", "true") != "false") {
    std::vector<Tensor> zeros;
    for (const TensorSpec& s : engine->inputs_) {
      std::vector<int64_t> shape = s.dims;
      if (engine->batched_ && !shape.empty()) shape[0] = 1;
      if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
        zeros.clear();
        break;
      }
      Tensor t{s.name, s.type, shape, {}};
      t.data.assign(t.NumElements() * ElementSize(s.type), '\0');
      zeros.push_back(std::move(t));
    }
    if (!zeros.empty()) {
      Instance* instance = engine->instances_[0].get();
      absl::MutexLock lock(&instance->mu);
      auto result = engine->Forward(instance, zeros);
      if (!result.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model '", ctx.model, "': a trial batch of zeros shaped as config.pbtxt says failed (",
            result.status().message(),
            "); check that the input names, data types and dims in config.pbtxt match the graph, "
            "or set parameter warmup=\"false\""));
      }
    }
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

OnnxEngine::Instance* OnnxEngine::Acquire() {
  for (auto& instance : instances_) {
    if (instance->mu.TryLock()) return instance.get();
  }
  Instance* instance = instances_[next_.fetch_add(1) % instances_.size()].get();
  instance->mu.Lock();
  return instance;
}

absl::StatusOr<std::vector<Tensor>> OnnxEngine::Run(const std::vector<Tensor>& inputs) {
  Instance* instance = Acquire();
  absl::StatusOr<std::vector<Tensor>> result = Forward(instance, inputs);
  instance->mu.Unlock();
  return result;
}

absl::StatusOr<std::vector<Tensor>> OnnxEngine::Forward(Instance* instance,
                                                        const std::vector<Tensor>& inputs) {
  int64_t batch = 1;
  try {
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
      if (!IsNumeric(t->type)) {
        return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' is ",
                                                       DataTypeName(t->type), "; model '", model_,
                                                       "' takes ", DataTypeName(spec.type)));
      }
      const int64_t n = t->NumElements();
      if (n < 0 || t->data.size() != static_cast<size_t>(n) * ElementSize(t->type)) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", t->name, "' holds ", t->data.size(), " bytes, not what ",
                         DataTypeName(t->type), ShapeString(t->shape), " needs"));
      }
      if (!ShapeMatches(t->shape, spec.dims)) {
        return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' is shaped ",
                                                       ShapeString(t->shape), "; model '", model_,
                                                       "' takes ", ShapeString(spec.dims)));
      }
      if (i == 0 && batched_ && !t->shape.empty()) batch = t->shape[0];
      std::vector<int> sizes(t->shape.begin(), t->shape.end());
      if (sizes.empty()) sizes.push_back(1);
      cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F);
      ToFloat(t->type, t->data.data(), static_cast<size_t>(n), blob.ptr<float>());
      instance->net.setInput(blob, spec.name);
    }
    std::vector<cv::Mat> outs;
    instance->net.forward(outs, output_names_);
    if (outs.size() != outputs_.size()) {
      return absl::InternalError(absl::StrCat("model '", model_, "' gave ", outs.size(),
                                              " outputs for the ", outputs_.size(), " asked"));
    }
    std::vector<Tensor> result;
    result.reserve(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      cv::Mat mat = outs[i];
      if (mat.depth() != CV_32F) mat.convertTo(mat, CV_32F);
      if (!mat.isContinuous()) mat = mat.clone();
      std::vector<int64_t> produced;
      for (int d = 0; d < mat.dims; ++d) produced.push_back(mat.size[d]);
      const int64_t total = static_cast<int64_t>(mat.total() * mat.channels());
      Tensor out;
      out.name = outputs_[i].name;
      out.type = outputs_[i].type;
      out.shape = OutputShape(outputs_[i], batched_, batch, produced, total);
      FromFloat(out.type, mat.ptr<float>(), static_cast<size_t>(total), &out.data);
      result.push_back(std::move(out));
    }
    return result;
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", model_, "': OpenCV failed to run the batch: ", CvError(e)));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", model_, "': running the batch failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Engine>> LoadOnnx(const LoadContext& ctx) {
  try {
    return OnnxEngine::Load(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", ctx.model, "': the onnx engine failed to load: ", e.what()));
  }
}

}  // namespace

LUMEN_ENGINE(onnx, (std::vector<std::string>{"onnxruntime_onnx", "onnxruntime"}), LoadOnnx);
// FindEngine looks a config's `backend:` up by engine name only, so Triton's
// backend "onnxruntime" needs a name of its own too.
LUMEN_ENGINE(onnxruntime, {}, LoadOnnx);

}  // namespace lumen::models
