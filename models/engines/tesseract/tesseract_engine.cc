// The `tesseract` engine: OCR with Tesseract's C++ API. Each element of a
// BYTES input is an encoded image (PNG, JPEG, TIFF, BMP, WebP: whatever
// OpenCV decodes); each element of the output is its text.
//
//   specs:      from config.pbtxt: one BYTES input (default "IMAGE", [batch]
//               or [batch, 1]), a BYTES output with the input's shape
//               (default "TEXT"), and optionally an FP32 output with the mean
//               word confidence in [0, 1]
//   parameters: "language" (default "eng"; "eng+deu" for several),
//               "psm" (page segmentation mode, default 7: one text line;
//               3: a whole page, 6: a block), "tessdata" (the tessdata
//               directory; default Tesseract's own, /usr/share/tesseract-ocr/
//               5/tessdata on Debian, or $TESSDATA_PREFIX), "dpi" (default
//               300), "instances" (default 2): how many Tesseract instances
//               (not thread-safe, so each behind a mutex) serve batches at once
//
// No model file: the language data is the model. A version directory may
// still hold one (it is not read).
#include <tesseract/baseapi.h>

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lumen/engine.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

std::string Param(const LoadContext& ctx, const std::string& key, const std::string& fallback) {
  auto it = ctx.parameters.find(key);
  if (it != ctx.parameters.end()) return it->second;
  return ctx.config ? Parameter(*ctx.config, key, fallback) : fallback;
}

absl::StatusOr<int> IntParam(const LoadContext& ctx, const std::string& key, int fallback, int lo,
                             int hi) {
  const std::string value = Param(ctx, key, "");
  if (value.empty()) return fallback;
  int n;
  if (!absl::SimpleAtoi(value, &n) || n < lo || n > hi) {
    return absl::InvalidArgumentError(absl::StrCat("model '", ctx.model, "': parameter ", key, "='",
                                                   value, "' is not a number from ", lo, " to ",
                                                   hi));
  }
  return n;
}

class TesseractEngine : public Engine {
 public:
  ~TesseractEngine() override {
    for (auto& instance : instances_) {
      absl::MutexLock lock(&instance->mu);
      instance->api.End();
    }
  }

  static absl::StatusOr<std::unique_ptr<Engine>> Load(const LoadContext& ctx);

  std::vector<TensorSpec> Inputs() const override { return {input_}; }
  std::vector<TensorSpec> Outputs() const override {
    std::vector<TensorSpec> out = {text_};
    if (has_confidence_) out.push_back(confidence_);
    return out;
  }
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs) override;

 private:
  struct Instance {
    absl::Mutex mu;
    tesseract::TessBaseAPI api ABSL_GUARDED_BY(mu);
  };

  Instance* Acquire() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // The text in `image` (decoded, 8-bit grey) and the mean confidence.
  absl::Status Recognize(Instance* instance, const cv::Mat& image, std::string* text,
                         float* confidence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(instance->mu);

  std::string model_;
  int dpi_ = 300;
  TensorSpec input_;
  TensorSpec text_;
  TensorSpec confidence_;
  bool has_confidence_ = false;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::atomic<size_t> next_{0};
};

absl::StatusOr<std::unique_ptr<Engine>> TesseractEngine::Load(const LoadContext& ctx) {
  auto engine = std::make_unique<TesseractEngine>();
  engine->model_ = ctx.model;
  const bool batched = ctx.config == nullptr || ctx.config->max_batch_size() > 0;
  std::vector<TensorSpec> inputs, outputs;
  if (ctx.config != nullptr) {
    inputs = ConfigInputs(*ctx.config);
    outputs = ConfigOutputs(*ctx.config);
  }
  const std::vector<int64_t> default_dims =
      batched ? std::vector<int64_t>{-1, 1} : std::vector<int64_t>{-1};
  if (inputs.empty()) inputs.push_back({"IMAGE", DataType::kBytes, default_dims});
  if (inputs.size() != 1 || inputs[0].type != DataType::kBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ctx.model,
        "': the tesseract engine takes one TYPE_STRING input of encoded "
        "images (e.g. input [{ name: \"IMAGE\" data_type: TYPE_STRING dims: [ 1 ] }])"));
  }
  engine->input_ = inputs[0];
  for (const TensorSpec& s : outputs) {
    if (s.type == DataType::kBytes && engine->text_.name.empty()) {
      engine->text_ = s;
    } else if (s.type == DataType::kFp32 && !engine->has_confidence_) {
      engine->confidence_ = s;
      engine->has_confidence_ = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", ctx.model, "': output '", s.name, "' (", DataTypeName(s.type),
          ") is neither the text (one TYPE_STRING output) nor the confidence (one TYPE_FP32 "
          "output)"));
    }
  }
  if (engine->text_.name.empty()) engine->text_ = {"TEXT", DataType::kBytes, engine->input_.dims};

  const std::string language = Param(ctx, "language", "eng");
  const std::string tessdata = Param(ctx, "tessdata", "");
  auto psm = IntParam(ctx, "psm", tesseract::PSM_SINGLE_LINE, 0, tesseract::PSM_COUNT - 1);
  if (!psm.ok()) return psm.status();
  auto dpi = IntParam(ctx, "dpi", 300, 70, 2400);
  if (!dpi.ok()) return dpi.status();
  engine->dpi_ = *dpi;
  auto instances = IntParam(ctx, "instances", 2, 1, 64);
  if (!instances.ok()) return instances.status();

  for (int i = 0; i < *instances; ++i) {
    auto instance = std::make_unique<Instance>();
    absl::MutexLock lock(&instance->mu);
    if (instance->api.Init(tessdata.empty() ? nullptr : tessdata.c_str(), language.c_str(),
                           tesseract::OEM_DEFAULT) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", ctx.model, "': Tesseract cannot load language '", language, "' from ",
          tessdata.empty() ? "its default tessdata directory" : tessdata,
          " (install its data, e.g. Debian's tesseract-ocr-", language.substr(0, 3),
          ", or point parameter tessdata at a directory holding ", language, ".traineddata)"));
    }
    instance->api.SetPageSegMode(static_cast<tesseract::PageSegMode>(*psm));
    engine->instances_.push_back(std::move(instance));
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

TesseractEngine::Instance* TesseractEngine::Acquire() {
  for (auto& instance : instances_) {
    if (instance->mu.TryLock()) return instance.get();
  }
  Instance* instance = instances_[next_.fetch_add(1) % instances_.size()].get();
  instance->mu.Lock();
  return instance;
}

absl::Status TesseractEngine::Recognize(Instance* instance, const cv::Mat& image, std::string* text,
                                        float* confidence) {
  tesseract::TessBaseAPI& api = instance->api;
  api.SetImage(image.data, image.cols, image.rows, 1, static_cast<int>(image.step));
  api.SetSourceResolution(dpi_);
  std::unique_ptr<char[]> utf8(api.GetUTF8Text());
  if (utf8 == nullptr) {
    api.Clear();
    return absl::InternalError("Tesseract recognized nothing (GetUTF8Text failed)");
  }
  *text = std::string(absl::StripAsciiWhitespace(utf8.get()));
  *confidence = text->empty() ? 0.0f : static_cast<float>(api.MeanTextConf()) / 100.0f;
  api.Clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Tensor>> TesseractEngine::Run(const std::vector<Tensor>& inputs) {
  const Tensor* t = nullptr;
  for (const Tensor& in : inputs) {
    if (in.name == input_.name) t = &in;
  }
  if (t == nullptr && inputs.size() == 1) t = &inputs[0];
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", model_, "' takes input '", input_.name, "', which is missing"));
  }
  if (t->type != DataType::kBytes) {
    return absl::InvalidArgumentError(absl::StrCat("input '", t->name, "' is ",
                                                   DataTypeName(t->type), "; model '", model_,
                                                   "' takes BYTES (encoded images)"));
  }
  auto images = t->Strings();
  if (!images.ok()) return images.status();
  if (static_cast<int64_t>(images->size()) != t->NumElements()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", t->name, "' holds ", images->size(), " elements, but its shape ",
                     ShapeString(t->shape), " says ", t->NumElements()));
  }

  // Decode everything first: a bad image fails the batch before any OCR.
  std::vector<cv::Mat> decoded(images->size());
  for (size_t i = 0; i < images->size(); ++i) {
    const std::string& bytes = (*images)[i];
    try {
      if (!bytes.empty()) {
        cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
        decoded[i] = cv::imdecode(raw, cv::IMREAD_GRAYSCALE);
      }
    } catch (const cv::Exception&) {
      decoded[i].release();
    }
    if (decoded[i].empty() || decoded[i].depth() != CV_8U) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", t->name, "' element ", i, " (", bytes.size(),
          " bytes) is not an image OpenCV can decode; send PNG, JPEG, TIFF, BMP or WebP bytes"));
    }
    if (!decoded[i].isContinuous()) decoded[i] = decoded[i].clone();
  }

  std::vector<std::string> texts(images->size());
  std::vector<float> confidences(images->size());
  Instance* instance = Acquire();
  absl::Status status;
  try {
    for (size_t i = 0; i < decoded.size() && status.ok(); ++i) {
      status = Recognize(instance, decoded[i], &texts[i], &confidences[i]);
      if (!status.ok()) {
        status = absl::InternalError(
            absl::StrCat("input '", t->name, "' element ", i, ": ", status.message()));
      }
    }
  } catch (const std::exception& e) {
    status =
        absl::InternalError(absl::StrCat("model '", model_, "': Tesseract failed: ", e.what()));
  }
  instance->mu.Unlock();
  if (!status.ok()) return status;

  std::vector<Tensor> out;
  out.push_back(Tensor::FromStrings(text_.name, t->shape, texts));
  if (has_confidence_) {
    out.push_back(Tensor::Of(confidence_.name, DataType::kFp32, t->shape, confidences));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadTesseract(const LoadContext& ctx) {
  try {
    return TesseractEngine::Load(ctx);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", ctx.model, "': the tesseract engine failed to load: ", e.what()));
  }
}

}  // namespace

LUMEN_ENGINE(tesseract, {}, LoadTesseract);

}  // namespace lumen::models
