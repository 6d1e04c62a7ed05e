// Test models and data; see test_models.h.
#include "models/engines/testmodels/test_models.h"

#include <google/protobuf/text_format.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "proto/model_config.pb.h"

#ifdef LUMEN_TEST_MODELS_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif
#ifdef LUMEN_TEST_MODELS_HAVE_XGBOOST
#include <xgboost/c_api.h>
#endif

namespace lumen::models::testing {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs `command` through the shell; its exit code, and stdout+stderr.
int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A Python that can `import onnx`: $LUMEN_TEST_PYTHON, Debian's
// /usr/bin/python3 (python3-onnx), or whatever python3 is on $PATH.
absl::StatusOr<std::string> PythonWithOnnx() {
  static const std::string* found = [] {
    std::vector<std::string> candidates;
    if (const char* env = getenv("LUMEN_TEST_PYTHON")) candidates.push_back(env);
    candidates.push_back("/usr/bin/python3");
    candidates.push_back("python3");
    for (const auto& py : candidates) {
      std::string out;
      if (RunCommand(ShellQuote(py) + " -c 'import onnx, numpy'", &out) == 0) {
        return new std::string(py);
      }
    }
    return new std::string;
  }();
  if (found->empty()) {
    return absl::FailedPreconditionError(
        "no Python with the onnx and numpy modules (tried $LUMEN_TEST_PYTHON, /usr/bin/python3, "
        "python3); install python3-onnx or set LUMEN_TEST_PYTHON");
  }
  return *found;
}

std::string FloatList(const std::vector<float>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.9g", v[i]);
    absl::StrAppend(&out, i ? "," : "", buf);
  }
  return out + "]";
}

#ifdef LUMEN_TEST_MODELS_HAVE_XGBOOST
absl::Status XgbCheck(int rc, const char* what) {
  if (rc == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", XGBGetLastError()));
}
#endif

}  // namespace

TempDir::TempDir() {
  const char* tmp = getenv("TMPDIR");
  std::string templ = absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/lumen-engine-test-XXXXXX");
  if (mkdtemp(templ.data()) != nullptr) path_ = templ;
}

TempDir::~TempDir() {
  if (!path_.empty()) RemoveAll(path_);
}

absl::StatusOr<config::ModelConfig> ParseConfig(const std::string& pbtxt) {
  config::ModelConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(pbtxt, &config)) {
    return absl::InvalidArgumentError("config.pbtxt does not parse:\n" + pbtxt);
  }
  return config;
}

absl::Status WriteModelDir(const std::string& repo, const std::string& model,
                           const std::string& config_pbtxt, int64_t version,
                           const std::string& filename, const std::string& bytes) {
  const std::string model_dir = repo + "/" + model;
  const std::string version_dir = absl::StrCat(model_dir, "/", version);
  LUMEN_RETURN_IF_ERROR(MakeDirs(version_dir));
  LUMEN_RETURN_IF_ERROR(WriteFileAtomic(model_dir + "/config.pbtxt", config_pbtxt));
  if (!filename.empty()) {
    LUMEN_RETURN_IF_ERROR(WriteFileAtomic(version_dir + "/" + filename, bytes));
  }
  return absl::OkStatus();
}

absl::Status WriteOnnxLinear(const std::string& path, const std::vector<float>& w,
                             const std::vector<float>& b, int in, int out) {
  if (w.size() != static_cast<size_t>(in) * out || b.size() != static_cast<size_t>(out)) {
    return absl::InvalidArgumentError("WriteOnnxLinear: w must hold in*out and b out values");
  }
  LUMEN_ASSIGN_OR_RETURN(std::string python, PythonWithOnnx());
  const std::string spec_path = path + ".spec.json";
  LUMEN_RETURN_IF_ERROR(WriteFileAtomic(
      spec_path, absl::StrCat("{\"in\":", in, ",\"out\":", out, ",\"w\":", FloatList(w),
                              ",\"b\":", FloatList(b), "}")));
  std::string output;
  int rc = RunCommand(absl::StrCat(ShellQuote(python), " ", ShellQuote(LUMEN_MAKE_ONNX_PY), " ",
                                   ShellQuote(spec_path), " ", ShellQuote(path)),
                      &output);
  std::remove(spec_path.c_str());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat(LUMEN_MAKE_ONNX_PY, " failed (exit ", rc, "): ", output));
  }
  return absl::OkStatus();
}

std::vector<float> XgboostFeatures(int rows, int n_features, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * n_features);
  for (float& v : x) v = u(rng);
  return x;
}

float XgboostTarget(const float* row) { return 2.0f * row[0] - row[1]; }

#ifdef LUMEN_TEST_MODELS_HAVE_XGBOOST

absl::Status WriteXgboostModel(const std::string& path, int n_features, int rows, uint64_t seed) {
  if (n_features < 2 || rows < 1) {
    return absl::InvalidArgumentError("WriteXgboostModel needs n_features >= 2 and rows >= 1");
  }
  std::vector<float> x = XgboostFeatures(rows, n_features, seed);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  std::vector<float> y(rows);
  for (int r = 0; r < rows; ++r)
    y[r] = XgboostTarget(&x[static_cast<size_t>(r) * n_features]) + noise(rng);

  DMatrixHandle dtrain = nullptr;
  BoosterHandle booster = nullptr;
  absl::Status s = XgbCheck(XGDMatrixCreateFromMat(x.data(), rows, n_features, NAN, &dtrain),
                            "XGDMatrixCreateFromMat");
  if (s.ok()) s = XgbCheck(XGDMatrixSetFloatInfo(dtrain, "label", y.data(), rows), "label");
  if (s.ok()) s = XgbCheck(XGBoosterCreate(&dtrain, 1, &booster), "XGBoosterCreate");
  const std::pair<const char*, std::string> params[] = {
      {"objective", "reg:squarederror"}, {"max_depth", "5"}, {"eta", "0.3"}, {"nthread", "1"},
      {"seed", std::to_string(seed)},    {"verbosity", "0"}};
  for (const auto& [k, v] : params) {
    if (s.ok()) s = XgbCheck(XGBoosterSetParam(booster, k, v.c_str()), k);
  }
  for (int i = 0; i < 60 && s.ok(); ++i) {
    s = XgbCheck(XGBoosterUpdateOneIter(booster, i, dtrain), "XGBoosterUpdateOneIter");
  }
  if (s.ok()) s = XgbCheck(XGBoosterSaveModel(booster, path.c_str()), "XGBoosterSaveModel");
  if (booster) XGBoosterFree(booster);
  if (dtrain) XGDMatrixFree(dtrain);
  return s;
}

absl::StatusOr<std::vector<float>> XgboostPredict(const std::string& path,
                                                  const std::vector<float>& x, int rows,
                                                  int n_features) {
  DMatrixHandle dm = nullptr;
  BoosterHandle booster = nullptr;
  std::vector<float> out;
  absl::Status s = XgbCheck(XGBoosterCreate(nullptr, 0, &booster), "XGBoosterCreate");
  if (s.ok()) s = XgbCheck(XGBoosterLoadModel(booster, path.c_str()), "XGBoosterLoadModel");
  if (s.ok()) {
    s = XgbCheck(XGDMatrixCreateFromMat(x.data(), rows, n_features, NAN, &dm),
                 "XGDMatrixCreateFromMat");
  }
  if (s.ok()) {
    bst_ulong len = 0;
    const float* result = nullptr;
    s = XgbCheck(XGBoosterPredict(booster, dm, 0, 0, 0, &len, &result), "XGBoosterPredict");
    if (s.ok()) out.assign(result, result + len);
  }
  if (dm) XGDMatrixFree(dm);
  if (booster) XGBoosterFree(booster);
  if (!s.ok()) return s;
  return out;
}

#else

absl::Status WriteXgboostModel(const std::string&, int, int, uint64_t) {
  return absl::UnimplementedError("lumen_test_models was built without XGBoost");
}
absl::StatusOr<std::vector<float>> XgboostPredict(const std::string&, const std::vector<float>&,
                                                  int, int) {
  return absl::UnimplementedError("lumen_test_models was built without XGBoost");
}

#endif  // LUMEN_TEST_MODELS_HAVE_XGBOOST

std::string RenderTextPng(const std::string& text, int height) {
#ifdef LUMEN_TEST_MODELS_HAVE_OPENCV
  const int font = cv::FONT_HERSHEY_DUPLEX;
  const int thickness = std::max(1, height / 24);
  int baseline = 0;
  // Capital letters about 5/8 of the height (40 px at 64).
  cv::Size unit = cv::getTextSize("H", font, 1.0, thickness, &baseline);
  const double scale = 0.625 * height / unit.height;
  cv::Size size = cv::getTextSize(text, font, scale, thickness, &baseline);
  const int margin = height / 4;
  cv::Mat image(height + 2 * margin, size.width + 2 * margin, CV_8UC1, cv::Scalar(255));
  const int y = margin + (height + size.height) / 2;
  cv::putText(image, text, cv::Point(margin, y), font, scale, cv::Scalar(0), thickness,
              cv::LINE_AA);
  std::vector<uchar> png;
  cv::imencode(".png", image, png);
  return std::string(png.begin(), png.end());
#else
  return "";
#endif
}

double CharacterErrorRate(const std::string& truth, const std::string& got) {
  if (truth.empty()) return got.empty() ? 0.0 : 1.0;
  std::vector<size_t> prev(got.size() + 1), cur(got.size() + 1);
  for (size_t j = 0; j <= got.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= truth.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= got.size(); ++j) {
      size_t subst = prev[j - 1] + (truth[i - 1] == got[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return static_cast<double>(prev[got.size()]) / truth.size();
}

}  // namespace lumen::models::testing
