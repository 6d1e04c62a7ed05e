// Small models and data for the engines' tests, written on the fly into a
// temporary directory: a linear ONNX graph (through Debian's python3-onnx),
// a TorchScript MLP (compiled from source by libtorch), an XGBoost
// regression model trained on generated data, and PNG images of text for
// OCR. Test-only; built with LUMEN_BUILD_TESTS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lumen::models {
namespace config {
class ModelConfig;
}

namespace testing {

// A directory from mkdtemp under $TMPDIR (or /tmp), removed with everything
// in it when this goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// config.pbtxt text, parsed; INVALID_ARGUMENT with the parser's complaint.
absl::StatusOr<config::ModelConfig> ParseConfig(const std::string& pbtxt);

// Writes <repo>/<model>/config.pbtxt and <repo>/<model>/<version>/<filename>
// holding `bytes` (skipped when `filename` is empty).
absl::Status WriteModelDir(const std::string& repo, const std::string& model,
                           const std::string& config_pbtxt, int64_t version,
                           const std::string& filename, const std::string& bytes);

// y = x·W + b as an ONNX graph (MatMul + Add, opset 13): input "INPUT0" FP32
// [batch, in], output "OUTPUT0" FP32 [batch, out]; `w` is row-major
// [in, out]. Runs models/engines/testmodels/make_onnx.py with a Python that
// has the onnx module ($LUMEN_TEST_PYTHON, /usr/bin/python3 or python3).
absl::Status WriteOnnxLinear(const std::string& path, const std::vector<float>& w,
                             const std::vector<float>& b, int in, int out);

// y = relu(x·W1 + b1)·W2 + b2 as a TorchScript module saved to `path`; W1 is
// row-major [in, hidden], W2 [hidden, out]. Lives in torch_models.cc, in
// the separate library lumen_test_models_torch (it needs libtorch).
absl::Status WriteTorchMlp(const std::string& path, const std::vector<float>& w1,
                           const std::vector<float>& b1, const std::vector<float>& w2,
                           const std::vector<float>& b2, int in, int hidden, int out);

// A module with no parameters whose methods are `source` (TorchScript, e.g.
// "def forward(self, a, b):\n    return a + b, a * b\n"), saved to `path`.
absl::Status WriteTorchScriptSource(const std::string& path, const std::string& source);

// `rows` x `n_features` values uniform in [-1, 1], row-major, the same for
// the same seed.
std::vector<float> XgboostFeatures(int rows, int n_features, uint64_t seed);
// What the XGBoost test model learns: y = 2*x0 - x1 (needs n_features >= 2).
float XgboostTarget(const float* row);
// Trains a regression model (reg:squarederror, 60 rounds of depth-5 trees)
// on XgboostFeatures(rows, n_features, seed) labelled with XgboostTarget
// plus a little noise, and saves it to `path` (.json: JSON, .ubj: UBJSON,
// otherwise the binary format).
absl::Status WriteXgboostModel(const std::string& path, int n_features, int rows, uint64_t seed);
// Predictions of the model at `path` for `x` (rows x n_features) through
// XGBoosterPredict on a DMatrix: the reference the engine is compared with.
absl::StatusOr<std::vector<float>> XgboostPredict(const std::string& path,
                                                  const std::vector<float>& x, int rows,
                                                  int n_features);

// Black text on white, `height` pixels tall with glyphs about 40 px high at
// the default, a margin all round, PNG-encoded.
std::string RenderTextPng(const std::string& text, int height = 64);

// Levenshtein distance between the two (bytes) over the length of `truth`.
double CharacterErrorRate(const std::string& truth, const std::string& got);

}  // namespace testing
}  // namespace lumen::models
