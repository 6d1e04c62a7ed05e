#include "models/repository.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/file_util.h"

namespace lumen::models {
namespace {

TEST(ModelConfigTest, ReadsTritonFieldsAndReportsUnsupportedOnes) {
  std::vector<std::string> unsupported;
  auto c = ParseModelConfig(R"(
name: "mlp"
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
version_policy: { latest { num_versions: 2 } }
parameters { key: "threads" value { string_value: "1" } }
optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" } ] } }
model_warmup [ { name: "w" batch_size: 1 } ]
)",
                            "mlp/config.pbtxt", "mlp", &unsupported);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_batch_size(), 8);
  EXPECT_EQ(c->input(0).dims(0), 4);
  EXPECT_EQ(c->instance_group(0).kind(), config::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c->dynamic_batching().max_queue_delay_microseconds(), 100u);
  EXPECT_EQ(c->parameters().at("threads").string_value(), "1");
  ASSERT_EQ(unsupported.size(), 2u);
  EXPECT_EQ(unsupported[0], "optimization (line 11)");
  EXPECT_EQ(unsupported[1], "model_warmup (line 12)");
}

TEST(ModelConfigTest, SaysWhatIsWrong) {
  auto bad = [](const std::string& text) {
    auto c = ParseModelConfig(text, "m/config.pbtxt", "m", nullptr);
    return c.ok() ? std::string("ok") : std::string(c.status().message());
  };
  EXPECT_NE(bad("max_batch_size: -1").find("max_batch_size is -1"), std::string::npos);
  EXPECT_NE(bad("name: \"other\"").find("folder is 'm'"), std::string::npos);
  EXPECT_NE(bad("input [ { name: \"x\" dims: [ 2 ] } ]").find("'x' needs a data_type"),
            std::string::npos);
  EXPECT_NE(bad("input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 0 ] } ]").find("dimension 0"),
            std::string::npos);
  EXPECT_NE(bad("max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }")
                .find("preferred_batch_size 8"),
            std::string::npos);
  EXPECT_NE(bad("max_batch_size: 4 {").find("m/config.pbtxt:1:"), std::string::npos);
  EXPECT_NE(bad("input [ { name: \"x\" data_type: TYPE_NOPE } ]").find("m/config.pbtxt:1:"),
            std::string::npos);
}

TEST(ModelConfigTest, VersionPolicies) {
  config::ModelConfig c;
  EXPECT_EQ(SelectVersions(c, {3, 1, 2}), (std::vector<int64_t>{3}));
  c.mutable_version_policy()->mutable_latest()->set_num_versions(2);
  EXPECT_EQ(SelectVersions(c, {3, 1, 2}), (std::vector<int64_t>{2, 3}));
  c.mutable_version_policy()->mutable_all();
  EXPECT_EQ(SelectVersions(c, {3, 1, 2}), (std::vector<int64_t>{1, 2, 3}));
  c.mutable_version_policy()->mutable_specific()->add_versions(1);
  c.mutable_version_policy()->mutable_specific()->add_versions(7);
  EXPECT_EQ(SelectVersions(c, {3, 1, 2}), (std::vector<int64_t>{1}));
}

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lumen_repo_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(repo_); }
  void Write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(repo_ + "/" + rel).parent_path());
    ASSERT_TRUE(WriteFileAtomic(repo_ + "/" + rel, text).ok());
  }
  std::string repo_;
};

TEST_F(RepositoryTest, ListsModelsAndTheFilesOfServedVersions) {
  Write("a/config.pbtxt", "backend: \"cpp\"");
  Write("a/labels.txt", "x\n");
  Write("a/1/model.bin", "one");
  Write("a/2/model.bin", "two");
  Write("a/2/sub/extra.bin", "extra");
  Write("b/config.pbtxt", "backend: \"cpp\"");
  Write("notamodel/readme", "");
  auto names = ListModels(repo_);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  auto m = ReadModel(repo_, "a");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->available.size(), 2u);
  EXPECT_EQ(m->versions, (std::vector<int64_t>{2}));
  std::vector<std::string> paths;
  for (const auto& f : m->files) paths.push_back(f.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"config.pbtxt", "labels.txt", "2/model.bin",
                                             "2/sub/extra.bin"}));
  EXPECT_EQ(m->files[2].digest, Sha256Hex("two"));
  // Through JSON (how replicas get it) and back.
  auto back = ModelFromJson(ModelToJson(*m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->files.size(), 4u);
  EXPECT_EQ(back->versions, m->versions);

  auto none = ReadModel(repo_, "b");  // no version folder
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no version to serve"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(ReadModel(repo_, "zzz").status()));
}

TEST_F(RepositoryTest, FilePathsCannotLeaveTheModelsFolder) {
  nlohmann::json j = {{"name", "a"},
                      {"config", ""},
                      {"versions", {1}},
                      {"files", {{{"path", "../../etc/passwd"}, {"digest", "00"}}}}};
  auto m = ModelFromJson(j);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("leaves the model's folder"), std::string::npos);
  j["files"][0]["path"] = "/etc/passwd";
  EXPECT_FALSE(ModelFromJson(j).ok());
}

}  // namespace
}  // namespace lumen::models
