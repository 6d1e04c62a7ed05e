// The xgboost engine on a regression model trained here (y = 2*x0 - x1):
// compared with XGBoosterPredict on the same rows and, loosely, with the
// function itself; file formats, default specs, errors, threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "common/file_util.h"
#include "lumen/engine.h"
#include "models/engines/testmodels/test_models.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

constexpr int kFeatures = 4;

constexpr char kConfig[] = R"pb(
  name: "trees"
  backend: "xgboost"
  max_batch_size: 16 input
  [ {
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }] output
  [ {
    name: "OUTPUT__0"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }]
)pb";

// Error messages are part of the interface: the test log shows them.
void Show(const absl::Status& s) { printf("[ status ] %s\n", s.ToString().c_str()); }

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class XgboostEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    version_dir_ = dir_.path() + "/trees/1";
    ASSERT_TRUE(MakeDirs(version_dir_).ok());
  }

  void WriteModel(const std::string& name) {
    absl::Status s = testing::WriteXgboostModel(version_dir_ + "/" + name, kFeatures, 2000, 7);
    ASSERT_TRUE(s.ok()) << s;
  }

  absl::StatusOr<std::unique_ptr<Engine>> Load(const std::string& pbtxt) {
    auto config = testing::ParseConfig(pbtxt);
    if (!config.ok()) return config.status();
    config_ = *std::move(config);
    auto factory = FindEngine(config_);
    if (!factory.ok()) return factory.status();
    LoadContext ctx;
    ctx.model = config_.name();
    ctx.version = 1;
    ctx.version_dir = version_dir_;
    ctx.model_dir = dir_.path() + "/trees";
    ctx.config = &config_;
    ctx.max_batch_size = config_.max_batch_size();
    for (const auto& [k, v] : config_.parameters()) ctx.parameters[k] = v.string_value();
    return (*factory)(ctx);
  }

  // Runs `rows` fresh rows through `engine` and checks them against
  // XGBoosterPredict on the model in `file` and against 2*x0 - x1.
  void CheckBatch(Engine& engine, const std::string& file, int rows, uint64_t seed,
                  std::vector<int64_t> want_shape) {
    std::vector<float> x = testing::XgboostFeatures(rows, kFeatures, seed);
    auto out = engine.Run({Tensor::Of("INPUT__0", DataType::kFp32, {rows, kFeatures}, x)});
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), 1u);
    const Tensor& y = (*out)[0];
    EXPECT_EQ(y.type, DataType::kFp32);
    EXPECT_EQ(y.shape, want_shape);
    ASSERT_TRUE(y.CheckSize().ok());
    ASSERT_EQ(y.NumElements(), rows);
    auto reference = testing::XgboostPredict(version_dir_ + "/" + file, x, rows, kFeatures);
    ASSERT_TRUE(reference.ok()) << reference.status();
    for (int r = 0; r < rows; ++r) {
      EXPECT_NEAR(y.As<float>()[r], (*reference)[r], 1e-4) << r;
      EXPECT_NEAR(y.As<float>()[r], testing::XgboostTarget(&x[r * kFeatures]), 0.25) << r;
    }
  }

  testing::TempDir dir_;
  std::string version_dir_;
  config::ModelConfig config_;
};

TEST_F(XgboostEngineTest, PredictsLikeXgboostItself) {
  WriteModel("model.json");
  auto start = std::chrono::steady_clock::now();
  auto engine = Load(kConfig);
  auto loaded = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto inputs = (*engine)->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].name, "INPUT__0");
  EXPECT_EQ(inputs[0].type, DataType::kFp32);
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, kFeatures}));
  auto outputs = (*engine)->Outputs();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(outputs[0].dims, (std::vector<int64_t>{-1, 1}));

  std::vector<float> x = testing::XgboostFeatures(3, kFeatures, 13);
  auto run_start = std::chrono::steady_clock::now();
  ASSERT_TRUE((*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kFeatures}, x)}).ok());
  auto run_end = std::chrono::steady_clock::now();
  CheckBatch(**engine, "model.json", 3, 11, {3, 1});
  CheckBatch(**engine, "model.json", 16, 12, {16, 1});

  constexpr int kRuns = 200;
  auto steady_start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    ASSERT_TRUE((*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {3, kFeatures}, x)}).ok());
  }
  auto steady_end = std::chrono::steady_clock::now();
  printf("[ timing ] xgboost: load %.1f ms, first batch of 3 %.3f ms, steady batch of 3 %.3f ms\n",
         Ms(loaded - start), Ms(run_end - run_start), Ms(steady_end - steady_start) / kRuns);
}

TEST_F(XgboostEngineTest, DefaultsTheSpecsWhenTheConfigHasNone) {
  WriteModel("model.json");
  auto engine = Load(R"pb(name: "trees" backend: "xgboost" max_batch_size: 16)pb");
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto inputs = (*engine)->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].name, "INPUT__0");
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, kFeatures}));
  auto outputs = (*engine)->Outputs();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(outputs[0].type, DataType::kFp32);
  EXPECT_EQ(outputs[0].dims, (std::vector<int64_t>{-1}));
  CheckBatch(**engine, "model.json", 3, 21, {3});
}

TEST_F(XgboostEngineTest, ReadsUbjsonAndBinaryModels) {
  WriteModel("model.ubj");
  {
    auto engine = Load(kConfig);
    ASSERT_TRUE(engine.ok()) << engine.status();
    CheckBatch(**engine, "model.ubj", 3, 31, {3, 1});
  }
  ASSERT_EQ(
      std::rename((version_dir_ + "/model.ubj").c_str(), (version_dir_ + "/xgboost.model").c_str()),
      0);
  WriteModel("model.bst");
  auto engine = Load(kConfig);  // model.bst comes before xgboost.model
  ASSERT_TRUE(engine.ok()) << engine.status();
  CheckBatch(**engine, "model.bst", 3, 32, {3, 1});
}

TEST_F(XgboostEngineTest, NamedFileAndFp64Inputs) {
  WriteModel("trees.json");
  std::string pbtxt = std::string(kConfig) + "default_model_filename: \"trees.json\"\n";
  pbtxt.replace(pbtxt.find("TYPE_FP32"), 9, "TYPE_FP64");
  pbtxt.replace(pbtxt.rfind("TYPE_FP32"), 9, "TYPE_FP64");
  auto engine = Load(pbtxt);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x = testing::XgboostFeatures(3, kFeatures, 41);
  std::vector<double> xd(x.begin(), x.end());
  auto out = (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp64, {3, kFeatures}, xd)});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].type, DataType::kFp64);
  ASSERT_TRUE((*out)[0].CheckSize().ok());
  auto reference = testing::XgboostPredict(version_dir_ + "/trees.json", x, 3, kFeatures);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (int r = 0; r < 3; ++r) EXPECT_NEAR((*out)[0].As<double>()[r], (*reference)[r], 1e-4);
}

TEST_F(XgboostEngineTest, MissingFilesAreNotFound) {
  auto engine = Load(kConfig);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(engine.status().message().find("model.json"), std::string::npos) << engine.status();
  EXPECT_NE(engine.status().message().find(version_dir_), std::string::npos) << engine.status();

  auto named = Load(std::string(kConfig) + "default_model_filename: \"trees.json\"\n");
  ASSERT_FALSE(named.ok());
  Show(named.status());
  EXPECT_EQ(named.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(named.status().message().find(version_dir_ + "/trees.json"), std::string::npos)
      << named.status();
}

TEST_F(XgboostEngineTest, GarbageFileIsInvalidArgument) {
  ASSERT_TRUE(WriteFileAtomic(version_dir_ + "/model.json", "{\"not\": \"a model\"}").ok());
  auto engine = Load(kConfig);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument) << engine.status();
  EXPECT_NE(engine.status().message().find("model.json"), std::string::npos) << engine.status();
}

TEST_F(XgboostEngineTest, ConfigWithTheWrongFeatureCount) {
  WriteModel("model.json");
  std::string pbtxt = kConfig;
  pbtxt.replace(pbtxt.find("dims: [ 4 ]"), 11, "dims: [ 5 ]");
  auto engine = Load(pbtxt);
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("4 features"), std::string::npos) << engine.status();
}

TEST_F(XgboostEngineTest, WrongInputsAreErrors) {
  WriteModel("model.json");
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto wide = (*engine)->Run(
      {Tensor::Of("INPUT__0", DataType::kFp32, {3, 5}, std::vector<float>(15, 0.5f))});
  ASSERT_FALSE(wide.ok());
  Show(wide.status());
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wide.status().message().find("4 features"), std::string::npos) << wide.status();
  auto strings = (*engine)->Run({Tensor::FromStrings("INPUT__0", {1}, {"abc"})});
  ASSERT_FALSE(strings.ok());
  Show(strings.status());
  EXPECT_EQ(strings.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(XgboostEngineTest, RunsFromSeveralThreads) {
  WriteModel("model.json");
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<float> x = testing::XgboostFeatures(64, kFeatures, 51);
  auto reference = testing::XgboostPredict(version_dir_ + "/model.json", x, 64, kFeatures);
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        int first = (t * 7 + i) % 60, rows = 1 + i % 4;
        std::vector<float> part(x.begin() + first * kFeatures,
                                x.begin() + (first + rows) * kFeatures);
        auto out =
            (*engine)->Run({Tensor::Of("INPUT__0", DataType::kFp32, {rows, kFeatures}, part)});
        if (!out.ok() || (*out)[0].NumElements() != rows) {
          ++bad;
          continue;
        }
        for (int r = 0; r < rows; ++r) {
          if (std::abs((*out)[0].As<float>()[r] - (*reference)[first + r]) > 1e-4) ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace lumen::models
