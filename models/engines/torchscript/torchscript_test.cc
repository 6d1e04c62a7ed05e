// The torchscript engine on modules compiled here by libtorch: an MLP
// compared with relu(x·W1 + b1)·W2 + b2 computed in the test, tuple and
// dict outputs, integer inputs, type conversion, and the errors.
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
constexpr int kHidden = 8;
constexpr int kOut = 3;

constexpr char kConfig[] = R"pb(
  name: "mlp"
  platform: "pytorch_libtorch"
  max_batch_size: 8 input
  [ {
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }] output
  [ {
    name: "OUTPUT__0"
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

std::string WithParameter(std::string pbtxt, const std::string& key, const std::string& value) {
  return pbtxt + "parameters { key: \"" + key + "\" value { string_value: \"" + value + "\" } }\n";
}

class TorchScriptEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    w1_ = Random(kIn * kHidden, 1);
    b1_ = Random(kHidden, 2);
    w2_ = Random(kHidden * kOut, 3);
    b2_ = Random(kOut, 4);
    version_dir_ = dir_.path() + "/mlp/1";
    ASSERT_TRUE(MakeDirs(version_dir_).ok());
    absl::Status s =
        testing::WriteTorchMlp(version_dir_ + "/model.pt", w1_, b1_, w2_, b2_, kIn, kHidden, kOut);
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
    ctx.model_dir = dir_.path() + "/mlp";
    ctx.config = &config_;
    ctx.max_batch_size = config_.max_batch_size();
    ctx.gpu = gpu;
    for (const auto& [k, v] : config_.parameters()) ctx.parameters[k] = v.string_value();
    return (*factory)(ctx);
  }

  std::vector<float> Expected(const std::vector<float>& x, int rows) {
    std::vector<float> y(rows * kOut);
    for (int r = 0; r < rows; ++r) {
      float h[kHidden];
      for (int j = 0; j < kHidden; ++j) {
        float acc = b1_[j];
        for (int i = 0; i < kIn; ++i) acc += x[r * kIn + i] * w1_[i * kHidden + j];
        h[j] = std::max(acc, 0.0f);
      }
      for (int o = 0; o < kOut; ++o) {
        float acc = b2_[o];
        for (int j = 0; j < kHidden; ++j) acc += h[j] * w2_[j * kOut + o];
        y[r * kOut + o] = acc;
      }
    }
    return y;
  }

  testing::TempDir dir_;
  std::string version_dir_;
  std::vector<float> w1_, b1_, w2_, b2_;
  config::ModelConfig config_;
};

TEST_F(TorchScriptEngineTest, RunsTheMlpOnABatch) {
  auto start = std::chrono::steady_clock::now();
  auto engine = Load(kConfig);
  auto loaded = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine.ok()) << engine.status();

  auto inputs = (*engine)->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].name, "INPUT__0");
  EXPECT_EQ(inputs[0].type, DataType::kFp32);
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, kIn}));
  auto outputs = (*engine)->Outputs();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(outputs[0].dims, (std::vector<int64_t>{-1, kOut}));

  std::vector<float> x = Random(3 * kIn, 5);
  auto run_start = std::chrono::steady_clock::now();
  auto out = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kIn}, x)});
  auto run_end = std::chrono::steady_clock::now();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.name, "OUTPUT__0");
  EXPECT_EQ(y.type, DataType::kFp32);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{3, kOut}));
  ASSERT_TRUE(y.CheckSize().ok());
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR(y.As<float>()[i], want[i], 1e-4) << i;

  auto steady_start = std::chrono::steady_clock::now();
  constexpr int kRuns = 100;
  for (int i = 0; i < kRuns; ++i) {
    ASSERT_TRUE((*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kIn}, x)}).ok());
  }
  auto steady_end = std::chrono::steady_clock::now();
  printf(
      "[ timing ] torchscript: load %.1f ms (with 2 warm-up batches), first batch of 3 %.3f ms, "
      "steady batch of 3 %.3f ms\n",
      Ms(loaded - start), Ms(run_end - run_start), Ms(steady_end - steady_start) / kRuns);
}

TEST_F(TorchScriptEngineTest, AnswersToThePytorchBackend) {
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.find("platform: \"pytorch_libtorch\""),
                sizeof("platform: \"pytorch_libtorch\"") - 1, "backend: \"pytorch\"");
  auto engine = Load(pbtxt);
  ASSERT_TRUE(engine.ok()) << engine.status();
}

TEST_F(TorchScriptEngineTest, ConvertsToTheConfigsOutputType) {
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.rfind("TYPE_FP32"), 9, "TYPE_FP64");
  auto engine = Load(WithParameter(pbtxt, "warmup", "0"));
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x = Random(3 * kIn, 6);
  auto out = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kIn}, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].type, DataType::kFp64);
  ASSERT_TRUE((*out)[0].CheckSize().ok());
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR((*out)[0].As<double>()[i], want[i], 1e-4);
}

TEST_F(TorchScriptEngineTest, TupleOutputsAndIntegerInputsByTritonIndex) {
  // Inputs listed out of order: INPUT__1 goes second to forward() anyway.
  ASSERT_TRUE(testing::WriteTorchScriptSource(version_dir_ + "/model.pt", R"(
def forward(self, ids, scale):
    return ids * 2, scale.sum(1)
)")
                  .ok());
  auto engine = Load(R"pb(
    name: "mlp"
    platform: "pytorch_libtorch"
    max_batch_size: 4 input
    [ {
      name: "SCALE__1"
      data_type: TYPE_FP64
      dims: [ 2 ]
    }
      , {
        name: "IDS__0"
        data_type: TYPE_INT64
        dims: [ 3 ]
      }] output
    [ {
      name: "SUM__1"
      data_type: TYPE_FP64
      dims: []
    }
      , {
        name: "DOUBLED__0"
        data_type: TYPE_INT64
        dims: [ 3 ]
      }]
  )pb");
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto out = (*engine)->Run({
      Tensor::Of("IDS__0", DataType::kInt64, {2, 3}, std::vector<int64_t>{1, 2, 3, 4, 5, 6}),
      Tensor::Of("SCALE__1", DataType::kFp64, {2, 2}, std::vector<double>{0.5, 1.5, -1, 4}),
  });
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "SUM__1");
  ASSERT_EQ((*out)[0].shape, (std::vector<int64_t>{2}));
  EXPECT_DOUBLE_EQ((*out)[0].As<double>()[0], 2.0);
  EXPECT_DOUBLE_EQ((*out)[0].As<double>()[1], 3.0);
  EXPECT_EQ((*out)[1].name, "DOUBLED__0");
  ASSERT_EQ((*out)[1].shape, (std::vector<int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*out)[1].As<int64_t>()[i], 2 * (i + 1));
}

TEST_F(TorchScriptEngineTest, DictOutputsByName) {
  ASSERT_TRUE(testing::WriteTorchScriptSource(version_dir_ + "/model.pt", R"(
def forward(self, x):
    return {"neg": -x, "twice": x + x}
)")
                  .ok());
  auto engine = Load(R"pb(
    name: "mlp"
    backend: "torchscript"
    max_batch_size: 4 input
    [ {
      name: "x"
      data_type: TYPE_INT32
      dims: [ 2 ]
    }] output
    [ {
      name: "twice"
      data_type: TYPE_INT32
      dims: [ 2 ]
    }
      , {
        name: "neg"
        data_type: TYPE_INT32
        dims: [ 2 ]
      }]
  )pb");
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto out = (*engine)->Run(
      {Tensor::Of("x", DataType::kInt32, {3, 2}, std::vector<int32_t>{1, 2, 3, 4, 5, 6})});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ((*out)[0].As<int32_t>()[i], 2 * (i + 1));
    EXPECT_EQ((*out)[1].As<int32_t>()[i], -(i + 1));
  }
}

TEST_F(TorchScriptEngineTest, MissingFileIsNotFoundNamingTheFile) {
  auto engine = Load(std::string(kConfig) + "default_model_filename: \"weights.pt\"\n");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(engine.status().message().find(version_dir_ + "/weights.pt"), std::string::npos)
      << engine.status();
}

TEST_F(TorchScriptEngineTest, GarbageFileIsInvalidArgument) {
  ASSERT_TRUE(WriteFileAtomic(version_dir_ + "/model.pt", "not a zip archive").ok());
  auto engine = Load(kConfig);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument) << engine.status();
  EXPECT_NE(engine.status().message().find("model.pt"), std::string::npos) << engine.status();
  EXPECT_EQ(engine.status().message().find("Exception raised from"), std::string::npos)
      << "no C++ backtrace in the message: " << engine.status();
}

TEST_F(TorchScriptEngineTest, ConfigWithoutTensorsAsksForThem) {
  auto engine = Load(R"pb(name: "mlp" platform: "pytorch_libtorch" max_batch_size: 8)pb");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("INPUT__0"), std::string::npos) << engine.status();
}

TEST_F(TorchScriptEngineTest, ConfigThatDisagreesWithForwardFailsAtLoad) {
  auto engine = Load(R"pb(
    name: "mlp"
    platform: "pytorch_libtorch"
    max_batch_size: 8 input
    [ {
      name: "INPUT__0"
      data_type: TYPE_FP32
      dims: [ 4 ]
    }] output
    [ {
      name: "OUTPUT__0"
      data_type: TYPE_FP32
      dims: [ 3 ]
    }
      , {
        name: "OUTPUT__1"
        data_type: TYPE_FP32
        dims: [ 3 ]
      }]
  )pb");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("declares 2 outputs"), std::string::npos)
      << engine.status();
}

TEST_F(TorchScriptEngineTest, WrongInputsAreErrors) {
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x(3 * 5, 1.0f);
  auto missing = (*engine)->Run({Tensor::Of("INPUT0", DataType::kFp32, {3, kIn}, x)});
  ASSERT_FALSE(missing.ok());
  Show(missing.status());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("INPUT__0"), std::string::npos) << missing.status();

  auto wide = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, 5}, x)});
  ASSERT_FALSE(wide.ok());
  Show(wide.status());
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument) << wide.status();
  EXPECT_EQ(wide.status().message().find("Exception raised from"), std::string::npos)
      << wide.status();

  EXPECT_TRUE(
      (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kIn}, Random(12, 7))}).ok());
}

TEST_F(TorchScriptEngineTest, RunsFromSeveralThreads) {
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int rows = 1 + (t + i) % 4;
        std::vector<float> x = Random(rows * kIn, t * 1000 + i);
        auto out = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {rows, kIn}, x)});
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

TEST_F(TorchScriptEngineTest, AGpuAssignmentRunsOnTheCpuWithoutCuda) {
  // The node assigned GPU 0: with CUDA the engine uses it, without it the
  // engine runs on the CPU; either way the answers are the same.
  auto engine = Load(kConfig, /*gpu=*/0);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x = Random(3 * kIn, 8);
  auto out = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kIn}, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<float> want = Expected(x, 3);
  for (int i = 0; i < 3 * kOut; ++i) EXPECT_NEAR((*out)[0].As<float>()[i], want[i], 1e-4);
}

}  // namespace
}  // namespace lumen::models
