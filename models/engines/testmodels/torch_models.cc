// The TorchScript test model; see test_models.h. Its own file (and library,
// lumen_test_models_torch) because libtorch's headers are slow to compile
// and only the torchscript engine's test needs them.
#include <torch/script.h>

#include <exception>

#include "models/engines/testmodels/test_models.h"

namespace lumen::models::testing {
namespace {

torch::Tensor Matrix(const std::vector<float>& v, int64_t rows, int64_t cols) {
  return torch::tensor(v, torch::kFloat32).reshape({rows, cols}).clone();
}

}  // namespace

absl::Status WriteTorchMlp(const std::string& path, const std::vector<float>& w1,
                           const std::vector<float>& b1, const std::vector<float>& w2,
                           const std::vector<float>& b2, int in, int hidden, int out) {
  if (w1.size() != static_cast<size_t>(in) * hidden || b1.size() != static_cast<size_t>(hidden) ||
      w2.size() != static_cast<size_t>(hidden) * out || b2.size() != static_cast<size_t>(out)) {
    return absl::InvalidArgumentError(
        "WriteTorchMlp: w1 must hold in*hidden, b1 hidden, w2 hidden*out and b2 out values");
  }
  try {
    torch::jit::Module m("Mlp");
    m.register_parameter("w1", Matrix(w1, in, hidden), /*is_buffer=*/false);
    m.register_parameter("b1", Matrix(b1, 1, hidden).reshape({hidden}), false);
    m.register_parameter("w2", Matrix(w2, hidden, out), false);
    m.register_parameter("b2", Matrix(b2, 1, out).reshape({out}), false);
    m.define(R"(
def forward(self, x):
    h = torch.relu(torch.matmul(x, self.w1) + self.b1)
    return torch.matmul(h, self.w2) + self.b2
)");
    m.save(path);
  } catch (const c10::Error& e) {
    return absl::InternalError(std::string("WriteTorchMlp: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("WriteTorchMlp: ") + e.what());
  }
  return absl::OkStatus();
}

absl::Status WriteTorchScriptSource(const std::string& path, const std::string& source) {
  try {
    torch::jit::Module m("Source");
    m.define(source);
    m.save(path);
  } catch (const c10::Error& e) {
    return absl::InternalError(std::string("WriteTorchScriptSource: ") +
                               e.what_without_backtrace());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("WriteTorchScriptSource: ") + e.what());
  }
  return absl::OkStatus();
}

}  // namespace lumen::models::testing
