// The onnx engine on a linear model written by make_onnx.py: specs, a batch
// compared with x·W + b computed here, the errors, concurrent runs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "common/file_util.h"
#include "lumen/engine.h"
#include "models/engines/testmodels/test_models.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

constexpr int kIn = 4;
constexpr int kOut = 3;

constexpr char kConfig[] = R"pb(
  name: "linear"
  platform: "onnxruntime_onnx"
  max_batch_size: 8 input
  [ {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }] output
  [ {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }]
)pb";

std::vector<float> Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Error messages are part of the interface: the test log shows them.
void Show(const absl::Status& s) { printf("[ status ] %s\n", s.ToString().c_str()); }

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class OnnxEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    w_ = Random(kIn * kOut, 1);
    b_ = Random(kOut, 2);
    version_dir_ = dir_.path() + "/linear/1";
    ASSERT_TRUE(MakeDirs(version_dir_).ok());
    absl::Status s = testing::WriteOnnxLinear(version_dir_ + "/model.onnx", w_, b_, kIn, kOut);
    ASSERT_TRUE(s.ok()) << s;
  }

  absl::StatusOr<std::unique_ptr<Engine>> Load(const std::string& pbtxt, int gpu = -1) {
    auto config = testing::ParseConfig(pbtxt);
    if (!config.ok()) return config.status();
    config_ = *std::move(config);
    auto factory = FindEngine(config_);
    if (!factory.ok()) return factory.status();
    LoadContext ctx;
    ctx.model = config_.name();
    ctx.version = 1;
    ctx.version_dir = version_dir_;
    ctx.model_dir = dir_.path() + "/linear";
    ctx.config = &config_;
    ctx.max_batch_size = config_.max_batch_size();
    ctx.gpu = gpu;
    for (const auto& [k, v] : config_.parameters()) ctx.parameters[k] = v.string_value();
    return (*factory)(ctx);
  }

  // x·W + b for `rows` rows of `x`.
  std::vector<float> Expected(const std::vector<float>& x, int rows) {
    std::vector<float> y(rows * kOut);
    for (int r = 0; r < rows; ++r) {
      for (int o = 0; o < kOut; ++o) {
        float acc = b_[o];
        for (int i = 0; i < kIn; ++i) acc += x[r * kIn + i] * w_[i * kOut + o];
        y[r * kOut + o] = acc;
      }
    }
    return y;
  }

  testing::TempDir dir_;
  std::string version_dir_;
  std::vector<float> w_, b_;
  config::ModelConfig config_;
};

TEST_F(OnnxEngineTest, RunsABatchAsXWPlusB) {
  auto start = std::chrono::steady_clock::now();
  auto engine = Load(kConfig);
  auto loaded = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine.ok()) << engine.status();

  auto inputs = (*engine)->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].name, "INPUT0");
  EXPECT_EQ(inputs[0].type, DataType::kFp32);
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, kIn}));
  auto outputs = (*engine)->Outputs();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "OUTPUT0");
  EXPECT_EQ(outputs[0].type, DataType::kFp32);
  EXPECT_EQ(outputs[0].dims, (std::vector<int64_t>{-1, kOut}));

  std::vector<float> x = Random(3 * kIn, 3);
  auto run_start = std::chrono::steady_clock::now();
  auto out = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, x)});
  auto run_end = std::chrono::steady_clock::now();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.name, "OUTPUT0");
  EXPECT_EQ(y.type, DataType::kFp32);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{3, kOut}));
  ASSERT_TRUE(y.CheckSize().ok());
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR(y.As<float>()[i], want[i], 1e-4) << i;

  // Another batch size through the same network.
  std::vector<float> x5 = Random(5 * kIn, 4);
  auto out5 = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {5, kIn}, x5)});
  ASSERT_TRUE(out5.ok()) << out5.status();
  ASSERT_EQ((*out5)[0].shape, (std::vector<int64_t>{5, kOut}));
  std::vector<float> want5 = Expected(x5, 5);
  for (int i = 0; i < 5 * kOut; ++i) EXPECT_NEAR((*out5)[0].As<float>()[i], want5[i], 1e-4);

  auto steady_start = std::chrono::steady_clock::now();
  constexpr int kRuns = 100;
  for (int i = 0; i < kRuns; ++i) {
    ASSERT_TRUE((*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, x)}).ok());
  }
  auto steady_end = std::chrono::steady_clock::now();
  printf("[ timing ] onnx: load %.1f ms, first batch of 3 %.3f ms, steady batch of 3 %.3f ms\n",
         Ms(loaded - start), Ms(run_end - run_start), Ms(steady_end - steady_start) / kRuns);
}

TEST_F(OnnxEngineTest, AnswersToTheOnnxruntimeBackend) {
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.find("platform: \"onnxruntime_onnx\""),
                sizeof("platform: \"onnxruntime_onnx\"") - 1, "backend: \"onnxruntime\"");
  auto engine = Load(pbtxt);
  ASSERT_TRUE(engine.ok()) << engine.status();
  pbtxt.replace(pbtxt.find("backend: \"onnxruntime\""), sizeof("backend: \"onnxruntime\"") - 1,
                "backend: \"onnx\"");
  EXPECT_TRUE(Load(pbtxt).ok());
}

TEST_F(OnnxEngineTest, ConvertsInt64Inputs) {
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.find("TYPE_FP32"), 9, "TYPE_INT64");
  auto engine = Load(pbtxt);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<int64_t> xi = {1, -2, 3, 0, 5, 6, -7, 8, 0, 0, 1, 2};
  auto out = (*engine)->Run({Tensor::Of("INPUT0", DataType::kInt64, {3, kIn}, xi)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<float> x(xi.begin(), xi.end());
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR((*out)[0].As<float>()[i], want[i], 1e-4);
}

TEST_F(OnnxEngineTest, MissingFileIsNotFoundNamingTheFile) {
  std::string pbtxt = std::string(kConfig) + "default_model_filename: \"other.onnx\"\n";
  auto engine = Load(pbtxt);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(engine.status().message().find(version_dir_ + "/other.onnx"), std::string::npos)
      << engine.status();
}

TEST_F(OnnxEngineTest, GarbageFileIsInvalidArgument) {
  ASSERT_TRUE(WriteFileAtomic(version_dir_ + "/model.onnx", "not an onnx graph").ok());
  auto engine = Load(kConfig);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument) << engine.status();
  EXPECT_NE(engine.status().message().find("model.onnx"), std::string::npos) << engine.status();
}

TEST_F(OnnxEngineTest, ConfigWithoutTensorsAsksForThem) {
  auto engine = Load(R"pb(name: "linear" platform: "onnxruntime_onnx" max_batch_size: 8)pb");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("input"), std::string::npos) << engine.status();
}

TEST_F(OnnxEngineTest, UnknownOutputNameListsTheGraphsOutputs) {
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.find("\"OUTPUT0\""), 9, "\"SCORES\"");
  auto engine = Load(pbtxt);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("SCORES"), std::string::npos) << engine.status();
  EXPECT_NE(engine.status().message().find("OUTPUT0"), std::string::npos) << engine.status();
}

TEST_F(OnnxEngineTest, WrongInputsAreErrors) {
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x(3 * 5, 1.0f);
  auto missing = (*engine)->Run({Tensor::Of("OTHER", DataType::kFp32, {3, kIn}, x)});
  ASSERT_FALSE(missing.ok());
  Show(missing.status());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("INPUT0"), std::string::npos) << missing.status();

  auto wide = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, 5}, x)});
  ASSERT_FALSE(wide.ok());
  Show(wide.status());
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument) << wide.status();

  auto short_data = (*engine)->Run(
      {Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, std::vector<float>(2, 0.0f))});
  ASSERT_FALSE(short_data.ok());
  Show(short_data.status());
  EXPECT_EQ(short_data.status().code(), absl::StatusCode::kInvalidArgument);

  // The engine still works afterwards.
  EXPECT_TRUE(
      (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, Random(12, 9))}).ok());
}

TEST_F(OnnxEngineTest, RunsFromSeveralThreads) {
  auto engine = Load(std::string(kConfig) +
                     "parameters { key: \"instances\" value { string_value: \"3\" } }\n");
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int rows = 1 + (t + i) % 4;
        std::vector<float> x = Random(rows * kIn, t * 1000 + i);
        auto out = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {rows, kIn}, x)});
        if (!out.ok() || (*out)[0].shape != std::vector<int64_t>{rows, kOut}) {
          ++bad;
          continue;
        }
        std::vector<float> want = Expected(x, rows);
        for (int k = 0; k < rows * kOut; ++k) {
          if (std::abs((*out)[0].As<float>()[k] - want[k]) > 1e-4) ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(OnnxEngineTest, BadInstancesParameter) {
  auto engine = Load(std::string(kConfig) +
                     "parameters { key: \"instances\" value { string_value: \"x\" } }\n");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("instances"), std::string::npos);
}

TEST_F(OnnxEngineTest, AGpuAssignmentRunsOnTheCpuWithoutCuda) {
  // The node assigned GPU 0: with CUDA the engine uses it, without it the
  // engine runs on the CPU; either way the answers are the same.
  auto engine = Load(kConfig, /*gpu=*/0);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x = Random(3 * kIn, 8);
  auto out = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR((*out)[0].As<float>()[i], want[i], 1e-4);
}

}  // namespace
}  // namespace lumen::models
