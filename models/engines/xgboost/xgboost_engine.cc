// The `xgboost` engine: gradient-boosted trees through XGBoost's C API
// (XGBoosterPredictFromDense: in-place prediction, safe from several
// threads at once on one booster).
//
//   file:       <version_dir>/<default_model_filename>, else the first of
//               model.json, model.ubj, model.bst, xgboost.model
//   input:      one tensor [batch, n_features] (FP32 best; FP64 and integer
//               types are read as they are); rank 1 without batching
//   output:     FP32 (or FP64) [batch] for regression and binary models,
//               [batch, n_classes] for multi:softprob
//   specs:      from config.pbtxt; when it lists none, input "INPUT__0" and
//               output "OUTPUT__0" shaped from the model
//   parameters: "threads" (default 1): XGBoost's nthread for a prediction;
//               "missing" (default NaN): the value that means "missing"
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <xgboost/c_api.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "lumen/engine.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

std::string Param(const LoadContext& ctx, const std::string& key, const std::string& fallback) {
  auto it = ctx.parameters.find(key);
  if (it != ctx.parameters.end()) return it->second;
  return ctx.config ? Parameter(*ctx.config, key, fallback) : fallback;
}

// XGBoost's last error without its timestamp, source location and stack
// trace: "[11:08:37] ./src/x.cc:81: Invalid cast ...\nStack trace: ..." gives
// "Invalid cast ...".
std::string XgbError() {
  std::string msg = XGBGetLastError();
  size_t trace = msg.find("Stack trace:");
  if (trace != std::string::npos) msg.resize(trace);
  if (!msg.empty() && msg[0] == '[') {
    size_t end = msg.find("] ");
    if (end != std::string::npos) msg.erase(0, end + 2);
    // "path:line: " when it is there.
    size_t colon = msg.find(": ");
    size_t space = msg.find(' ');
    if (colon != std::string::npos && colon < space && colon > 0 &&
        isdigit(static_cast<unsigned char>(msg[colon - 1]))) {
      msg.erase(0, colon + 2);
    }
  }
  while (!msg.empty() && isspace(static_cast<unsigned char>(msg.back()))) msg.pop_back();
  return msg;
}

// NumPy's __array_interface__ type string for `type`, or "" when XGBoost
// cannot read it.
const char* TypeString(DataType type) {
  switch (type) {
    case DataType::kFp32:
      return "<f4";
    case DataType::kFp64:
      return "<f8";
    case DataType::kInt8:
      return "|i1";
    case DataType::kInt16:
      return "<i2";
    case DataType::kInt32:
      return "<i4";
    case DataType::kInt64:
      return "<i8";
    case DataType::kUint8:
      return "|u1";
    case DataType::kUint16:
      return "<u2";
    case DataType::kUint32:
      return "<u4";
    case DataType::kUint64:
      return "<u8";
    default:
      return "";
  }
}

// The shape to report for an output of `total` elements: the config's dims
// (batch dimension = `rows`, one other -1 inferred) when they account for
// every element, else what XGBoost produced.
std::vector<int64_t> OutputShape(const TensorSpec& spec, int64_t rows,
                                 const std::vector<int64_t>& produced, int64_t total) {
  std::vector<int64_t> dims = spec.dims;
  if (!dims.empty() && dims[0] < 0) dims[0] = rows;
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

class XgboostEngine : public Engine {
 public:
  ~XgboostEngine() override {
    if (booster_ != nullptr) XGBoosterFree(booster_);
  }

  static absl::StatusOr<std::unique_ptr<Engine>> Load(const LoadContext& ctx);

  std::vector<TensorSpec> Inputs() const override { return {input_}; }
  std::vector<TensorSpec> Outputs() const override { return {output_}; }
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs) override;

 private:
  // Predictions for `rows` rows at `data`, and their shape.
  absl::Status Predict(const void* data, DataType type, int64_t rows, std::vector<float>* values,
                       std::vector<int64_t>* shape);

  std::string model_;
  BoosterHandle booster_ = nullptr;
  int64_t n_features_ = 0;
  std::string predict_config_;
  TensorSpec input_;
  TensorSpec output_;
};

absl::StatusOr<std::unique_ptr<Engine>> XgboostEngine::Load(const LoadContext& ctx) {
  auto engine = std::make_unique<XgboostEngine>();
  engine->model_ = ctx.model;
  const std::string given = ctx.config ? ctx.config->default_model_filename() : "";
  std::string file;
  if (!given.empty()) {
    file = ctx.version_dir + "/" + given;
    if (!FileExists(file)) {
      return absl::NotFoundError(absl::StrCat("model '", ctx.model, "' version ", ctx.version,
                                              ": no file ", file,
                                              " (config.pbtxt's default_model_filename)"));
    }
  } else {
    for (const char* name : {"model.json", "model.ubj", "model.bst", "xgboost.model"}) {
      if (FileExists(ctx.version_dir + "/" + name)) {
        file = ctx.version_dir + "/" + name;
        break;
      }
    }
    if (file.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "model '", ctx.model, "' version ", ctx.version, ": no XGBoost model in ",
          ctx.version_dir,
          " (looked for model.json, model.ubj, model.bst and xgboost.model; save "
          "with Booster.save_model(\"model.json\") or name the file with default_model_filename)"));
    }
  }

  int threads = 1;
  const std::string threads_param = Param(ctx, "threads", "1");
  if (!absl::SimpleAtoi(threads_param, &threads) || threads < 1 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter threads='",
                                                   threads_param, "' is not a thread count"));
  }
  std::string missing = "NaN";
  const std::string missing_param = Param(ctx, "missing", "");
  if (!missing_param.empty()) {
    float value;
    if (!absl::SimpleAtof(missing_param, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter missing='",
                                                     missing_param, "' is not a number"));
    }
    missing = std::isnan(value) ? "NaN" : absl::StrCat(value);
  }
  engine->predict_config_ =
      absl::StrCat("{\"type\": 0, \"training\": false, \"iteration_begin\": 0, ",
                   "\"iteration_end\": 0, \"strict_shape\": false, \"cache_id\": 0, ",
                   "\"missing\": ", missing, "}");

  if (XGBoosterCreate(nullptr, 0, &engine->booster_) != 0 ||
      XGBoosterLoadModel(engine->booster_, file.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': XGBoost cannot load ", file, ": ", XgbError()));
  }
  XGBoosterSetParam(engine->booster_, "nthread", std::to_string(threads).c_str());
  bst_ulong n_features = 0;
  if (XGBoosterGetNumFeature(engine->booster_, &n_features) != 0 || n_features == 0) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': ", file,
                                                   " does not say how many features it takes"));
  }
  engine->n_features_ = static_cast<int64_t>(n_features);

  // One row of zeros: configures the booster before requests come from
  // several threads, and gives the shape of a row's prediction.
  std::vector<float> zeros(n_features, 0.0f), values;
  std::vector<int64_t> shape;
  absl::Status trial = engine->Predict(zeros.data(), DataType::kFp32, 1, &values, &shape);
  if (!trial.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': ", file, " fails to predict: ", trial.message()));
  }
  std::vector<int64_t> row_dims(shape.begin() + (shape.empty() ? 0 : 1), shape.end());

  const bool batched = ctx.config == nullptr || ctx.config->max_batch_size() > 0;
  std::vector<TensorSpec> inputs, outputs;
  if (ctx.config != nullptr) {
    inputs = ConfigInputs(*ctx.config);
    outputs = ConfigOutputs(*ctx.config);
  }
  if (inputs.size() > 1 || outputs.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model,
                     "': an XGBoost model takes one input [batch, features] and gives "
                     "one output; config.pbtxt lists ",
                     inputs.size(), " inputs and ", outputs.size(), " outputs"));
  }
  if (inputs.empty()) {
    inputs.push_back({"INPUT__0", DataType::kFp32, {-1, engine->n_features_}});
  }
  if (outputs.empty()) {
    TensorSpec out{"OUTPUT__0", DataType::kFp32, {-1}};
    out.dims.insert(out.dims.end(), row_dims.begin(), row_dims.end());
    outputs.push_back(out);
  }
  engine->input_ = inputs[0];
  engine->output_ = outputs[0];
  if (*TypeString(engine->input_.type) == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", ctx.model, "': input '", engine->input_.name, "' has data_type ",
                     DataTypeName(engine->input_.type),
                     "; the xgboost engine takes FP32 (or FP64 or an integer type)"));
  }
  if (engine->output_.type != DataType::kFp32 && engine->output_.type != DataType::kFp64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model, "': output '", engine->output_.name, "' has data_type ",
        DataTypeName(engine->output_.type), "; XGBoost predicts TYPE_FP32 (or TYPE_FP64)"));
  }
  const auto& in_dims = engine->input_.dims;
  if (in_dims.empty() || (in_dims.back() >= 0 && in_dims.back() != engine->n_features_) ||
      (!batched && in_dims.size() == 1 && in_dims[0] >= 0 &&
       in_dims[0] % engine->n_features_ != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model, "': input '", engine->input_.name, "' is shaped ",
        ShapeString(in_dims), " but ", file, " takes rows of ", engine->n_features_,
        " features; give the input dims [ ", engine->n_features_, " ] (with max_batch_size > 0)"));
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

absl::Status XgboostEngine::Predict(const void* data, DataType type, int64_t rows,
                                    std::vector<float>* values, std::vector<int64_t>* shape) {
  const std::string array = absl::StrCat(
      "{\"data\": [", reinterpret_cast<uintptr_t>(data), ", true], \"shape\": [", rows, ", ",
      n_features_, "], \"typestr\": \"", TypeString(type), "\", \"version\": 3}");
  const bst_ulong* out_shape = nullptr;
  bst_ulong out_dim = 0;
  const float* out = nullptr;
  if (XGBoosterPredictFromDense(booster_, array.c_str(), predict_config_.c_str(), nullptr,
                                &out_shape, &out_dim, &out) != 0) {
    return absl::InvalidArgumentError(XgbError());
  }
  // XGBoost keeps these in a per-thread buffer: copy them out now.
  shape->assign(out_shape, out_shape + out_dim);
  int64_t total = 1;
  for (int64_t d : *shape) total *= d;
  values->assign(out, out + total);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Tensor>> XgboostEngine::Run(const std::vector<Tensor>& inputs) {
  const Tensor* t = nullptr;
  for (const Tensor& in : inputs) {
    if (in.name == input_.name) t = &in;
  }
  if (t == nullptr && inputs.size() == 1) t = &inputs[0];
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", model_, "' takes input '", input_.name, "', which is missing"));
  }
  if (*TypeString(t->type) == '\0') {
    return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' is ",
                                                   DataTypeName(t->type), "; model '", model_,
                                                   "' takes ", DataTypeName(input_.type)));
  }
  const int64_t n = t->NumElements();
  if (n < 0 || t->data.size() != static_cast<size_t>(n) * ElementSize(t->type)) {
    return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' holds ", t->data.size(),
                                                   " bytes, not what ", DataTypeName(t->type),
                                                   ShapeString(t->shape), " needs"));
  }
  if (t->shape.empty() || n % n_features_ != 0 ||
      (t->shape.size() > 1 && t->shape.back() != n_features_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", t->name, "' is shaped ", ShapeString(t->shape), "; model '", model_,
                     "' takes rows of ", n_features_, " features ([batch, ", n_features_, "])"));
  }
  const int64_t rows = n / n_features_;
  std::vector<float> values;
  std::vector<int64_t> shape;
  if (rows > 0) {
    try {
      absl::Status s = Predict(t->data.data(), t->type, rows, &values, &shape);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", model_, "': XGBoost failed on this batch: ", s.message()));
      }
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat("model '", model_, "': XGBoost failed on this batch: ", e.what()));
    }
  } else {
    shape = {0};
  }
  Tensor out;
  out.name = output_.name;
  out.type = output_.type;
  out.shape = OutputShape(output_, rows, shape, static_cast<int64_t>(values.size()));
  if (out.type == DataType::kFp32) {
    out.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  } else {
    std::vector<double> wide(values.begin(), values.end());
    out.data.assign(reinterpret_cast<const char*>(wide.data()), wide.size() * sizeof(double));
  }
  std::vector<Tensor> result;
  result.push_back(std::move(out));
  return result;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadXgboost(const LoadContext& ctx) {
  try {
    return XgboostEngine::Load(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", ctx.model, "': the xgboost engine failed to load: ", e.what()));
  }
}

}  // namespace

LUMEN_ENGINE(xgboost, {}, LoadXgboost);

}  // namespace lumen::models
