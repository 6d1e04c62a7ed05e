// The tesseract engine on text rendered here: a batch read back with a
// character error rate of at most 0.1, the confidence output, bad images
// and bad parameters.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "lumen/engine.h"
#include "models/engines/testmodels/test_models.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

constexpr char kConfig[] = R"pb(
  name: "ocr"
  backend: "tesseract"
  max_batch_size: 8 input
  [ {
    name: "IMAGE"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }] output
  [ {
    name: "TEXT"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }]
)pb";

const std::vector<std::string> kLines = {"HELLO LUMEN", "OCR 2026", "Serving 42 models"};

// Error messages are part of the interface: the test log shows them.
void Show(const absl::Status& s) { printf("[ status ] %s\n", s.ToString().c_str()); }

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class TesseractEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  absl::StatusOr<std::unique_ptr<Engine>> Load(const std::string& pbtxt) {
    auto config = testing::ParseConfig(pbtxt);
    if (!config.ok()) return config.status();
    config_ = *std::move(config);
    auto factory = FindEngine(config_);
    if (!factory.ok()) return factory.status();
    LoadContext ctx;
    ctx.model = config_.name();
    ctx.version = 1;
    ctx.version_dir = dir_.path() + "/ocr/1";
    ctx.model_dir = dir_.path() + "/ocr";
    ctx.config = &config_;
    ctx.max_batch_size = config_.max_batch_size();
    for (const auto& [k, v] : config_.parameters()) ctx.parameters[k] = v.string_value();
    return (*factory)(ctx);
  }

  testing::TempDir dir_;
  config::ModelConfig config_;
};

TEST_F(TesseractEngineTest, ReadsABatchOfRenderedLines) {
  auto start = std::chrono::steady_clock::now();
  auto engine = Load(kConfig);
  auto loaded = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto inputs = (*engine)->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].name, "IMAGE");
  EXPECT_EQ(inputs[0].type, DataType::kBytes);
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, 1}));
  auto outputs = (*engine)->Outputs();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "TEXT");
  EXPECT_EQ(outputs[0].type, DataType::kBytes);

  std::vector<std::string> images;
  for (const auto& line : kLines) {
    images.push_back(testing::RenderTextPng(line));
    ASSERT_FALSE(images.back().empty());
  }
  const int64_t n = static_cast<int64_t>(images.size());
  auto run_start = std::chrono::steady_clock::now();
  auto out = (*engine)->Run({Tensor::FromStrings("IMAGE", {n, 1}, images)});
  auto run_end = std::chrono::steady_clock::now();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].name, "TEXT");
  EXPECT_EQ((*out)[0].type, DataType::kBytes);
  EXPECT_EQ((*out)[0].shape, (std::vector<int64_t>{n, 1}));
  auto texts = (*out)[0].Strings();
  ASSERT_TRUE(texts.ok()) << texts.status();
  ASSERT_EQ(texts->size(), kLines.size());
  for (size_t i = 0; i < kLines.size(); ++i) {
    double cer = testing::CharacterErrorRate(kLines[i], (*texts)[i]);
    printf("[ ocr    ] '%s' -> '%s' (CER %.3f)\n", kLines[i].c_str(), (*texts)[i].c_str(), cer);
    EXPECT_LE(cer, 0.1) << kLines[i] << " read as " << (*texts)[i];
  }
  printf("[ timing ] tesseract: load %.1f ms (2 instances), batch of %lld lines %.1f ms\n",
         Ms(loaded - start), static_cast<long long>(n), Ms(run_end - run_start));
}

TEST_F(TesseractEngineTest, OneDimensionalBatchAndConfidence) {
  auto engine = Load(R"pb(
    name: "ocr"
    backend: "tesseract"
    max_batch_size: 0 input
    [ {
      name: "PNG"
      data_type: TYPE_STRING
      dims: [ -1 ]
    }] output
    [ {
      name: "WORDS"
      data_type: TYPE_STRING
      dims: [ -1 ]
    }
      , {
        name: "CONFIDENCE"
        data_type: TYPE_FP32
        dims: [ -1 ]
      }]
    parameters {
      key: "instances"
      value { string_value: "1" }
    }
  )pb");
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_EQ((*engine)->Outputs().size(), 2u);
  auto out = (*engine)->Run({Tensor::FromStrings(
      "PNG", {2},
      {testing::RenderTextPng("OCR 2026"), testing::RenderTextPng("HELLO LUMEN", 48)})});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "WORDS");
  EXPECT_EQ((*out)[0].shape, (std::vector<int64_t>{2}));
  auto texts = (*out)[0].Strings();
  ASSERT_TRUE(texts.ok());
  EXPECT_LE(testing::CharacterErrorRate("OCR 2026", (*texts)[0]), 0.1) << (*texts)[0];
  EXPECT_LE(testing::CharacterErrorRate("HELLO LUMEN", (*texts)[1]), 0.1) << (*texts)[1];
  EXPECT_EQ((*out)[1].name, "CONFIDENCE");
  EXPECT_EQ((*out)[1].type, DataType::kFp32);
  EXPECT_EQ((*out)[1].shape, (std::vector<int64_t>{2}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_GT((*out)[1].As<float>()[i], 0.5f);
    EXPECT_LE((*out)[1].As<float>()[i], 1.0f);
  }
}

TEST_F(TesseractEngineTest, DefaultSpecsWithoutAConfigList) {
  auto engine = Load(R"pb(name: "ocr" backend: "tesseract" max_batch_size: 4)pb");
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->Inputs()[0].name, "IMAGE");
  EXPECT_EQ((*engine)->Outputs()[0].name, "TEXT");
  EXPECT_EQ((*engine)->Outputs()[0].dims, (std::vector<int64_t>{-1, 1}));
}

TEST_F(TesseractEngineTest, ABadImageNamesTheElement) {
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto out = (*engine)->Run({Tensor::FromStrings(
      "IMAGE", {3, 1}, {testing::RenderTextPng("OK"), "definitely not a png", ""})});
  ASSERT_FALSE(out.ok());
  Show(out.status());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("element 1"), std::string::npos) << out.status();

  auto numbers =
      (*engine)->Run({Tensor::Of("IMAGE", DataType::kFp32, {1, 1}, std::vector<float>{1})});
  ASSERT_FALSE(numbers.ok());
  Show(numbers.status());
  EXPECT_EQ(numbers.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TesseractEngineTest, UnknownLanguageSaysWhatToInstall) {
  auto engine = Load(std::string(kConfig) +
                     "parameters { key: \"language\" value { string_value: \"xyz\" } }\n");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_NE(engine.status().message().find("'xyz'"), std::string::npos) << engine.status();
}

TEST_F(TesseractEngineTest, BadPsmIsInvalidArgument) {
  auto engine =
      Load(std::string(kConfig) + "parameters { key: \"psm\" value { string_value: \"99\" } }\n");
  ASSERT_FALSE(engine.ok());
  Show(engine.status());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("psm"), std::string::npos) << engine.status();
}

TEST_F(TesseractEngineTest, RunsFromSeveralThreads) {
  auto engine = Load(kConfig);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<std::string> images;
  for (const auto& line : kLines) images.push_back(testing::RenderTextPng(line));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        size_t k = (t + i) % images.size();
        auto out = (*engine)->Run({Tensor::FromStrings("IMAGE", {1, 1}, {images[k]})});
        if (!out.ok()) {
          ++bad;
          continue;
        }
        auto texts = (*out)[0].Strings();
        if (!texts.ok() || testing::CharacterErrorRate(kLines[k], (*texts)[0]) > 0.1) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace lumen::models
