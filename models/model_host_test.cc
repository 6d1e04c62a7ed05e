// The model host with the cpp engine and a test model class (Y = a·X + b),
// from a repository on disk: answers, errors, dynamic batching, version
// swaps, a failed load and multiplexing.
#include "models/model_host.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <thread>

#include "common/file_util.h"

namespace lumen::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ModelHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lumen_host_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    repo_ = root_ + "/repo";
  }
  void TearDown() override { fs::remove_all(root_); }

  void AddModel(const std::string& name, const std::string& config, std::vector<int> versions) {
    fs::create_directories(repo_ + "/" + name);
    ASSERT_TRUE(WriteFileAtomic(repo_ + "/" + name + "/config.pbtxt", config).ok());
    for (int v : versions) {
      fs::path dir = repo_ + "/" + name + "/" + std::to_string(v);
      fs::create_directories(dir);
      fs::copy_file(LUMEN_TEST_MODEL_AFFINE, dir / "libaffine.so",
                    fs::copy_options::overwrite_existing);
    }
  }

  std::unique_ptr<ModelHost> Host(size_t max_loaded = 0) {
    HostOptions o;
    o.deployment = "test";
    o.max_loaded = max_loaded;
    o.work_dir = root_ + "/work";
    // Files come from the repository itself (in a cluster: by digest).
    o.fetch = [this](const ModelFile& f) -> absl::StatusOr<std::string> {
      for (const auto& e : fs::recursive_directory_iterator(repo_)) {
        if (e.is_regular_file() && Sha256Hex(*ReadFile(e.path().string())) == f.digest) {
          return e.path().string();
        }
      }
      return absl::NotFoundError("no file " + f.digest);
    };
    return std::make_unique<ModelHost>(o);
  }

  json Models(std::vector<std::string> names) {
    json list = json::array();
    for (const auto& n : names) {
      auto m = ReadModel(repo_, n);
      EXPECT_TRUE(m.ok()) << m.status();
      list.push_back(ModelToJson(*m));
    }
    return {{"models", list}};
  }

  static serve::Response Infer(ModelHost& host, const std::string& path, const json& body) {
    serve::Request r;
    r.method = "POST";
    r.path = path;
    r.body = body.dump();
    return host.Handle(r);
  }
  static json X(std::vector<float> values, std::vector<int64_t> shape = {1, 4}) {
    return {
        {"inputs", {{{"name", "X"}, {"datatype", "FP32"}, {"shape", shape}, {"data", values}}}}};
  }
  static std::vector<float> Y(const serve::Response& r) {
    json j = json::parse(r.body);
    return j["outputs"][0]["data"].get<std::vector<float>>();
  }

  std::string root_, repo_;
};

constexpr char kAffine[] = R"(
backend: "cpp"
max_batch_size: 8
parameters { key: "class" value { string_value: "Affine" } }
parameters { key: "a" value { string_value: "2" } }
parameters { key: "b" value { string_value: "1" } }
)";

TEST_F(ModelHostTest, AnswersMetadataReadinessAndInference) {
  AddModel("affine", kAffine, {1});
  auto host = Host();
  ASSERT_TRUE(host->Apply(Models({"affine"})).ok());
  serve::Response r = Infer(*host, "/v2/models/affine/infer", X({1, 2, 3, 4}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Y(r), (std::vector<float>{3, 5, 7, 9}));
  EXPECT_EQ(json::parse(r.body)["model_name"], "affine");

  serve::Request meta;
  meta.path = "/v2/models/affine";
  r = host->Handle(meta);
  ASSERT_EQ(r.status, 200) << r.body;
  json m = json::parse(r.body);
  EXPECT_EQ(m["inputs"][0]["name"], "X");
  EXPECT_EQ(m["inputs"][0]["shape"], json::array({-1, 4}));
  EXPECT_EQ(m["versions"], json::array({"1"}));
  meta.path = "/v2/models/affine/versions/1/ready";
  EXPECT_EQ(host->Handle(meta).status, 200);
}

TEST_F(ModelHostTest, WrongRequestsAreAnsweredWithWhatWasExpected) {
  AddModel("affine", kAffine, {1});
  auto host = Host();
  ASSERT_TRUE(host->Apply(Models({"affine"})).ok());
  auto error = [&](const std::string& path, const json& body, int status) {
    serve::Response r = Infer(*host, path, body);
    EXPECT_EQ(r.status, status) << r.body;
    return json::parse(r.body).value("error", "");
  };
  EXPECT_NE(error("/v2/models/nope/infer", X({1, 2, 3, 4}), 404).find("unknown model 'nope'"),
            std::string::npos);
  EXPECT_NE(error("/v2/models/affine/versions/9/infer", X({1, 2, 3, 4}), 404).find("no version 9"),
            std::string::npos);
  json wrong_name = X({1, 2, 3, 4});
  wrong_name["inputs"][0]["name"] = "Z";
  EXPECT_NE(error("/v2/models/affine/infer", wrong_name, 400).find("no input 'Z'"),
            std::string::npos);
  json wrong_type = {
      {"inputs",
       {{{"name", "X"}, {"datatype", "INT32"}, {"shape", {1, 4}}, {"data", {1, 2, 3, 4}}}}}};
  std::string e = error("/v2/models/affine/infer", wrong_type, 400);
  EXPECT_NE(e.find("'X' has datatype INT32"), std::string::npos) << e;
  EXPECT_NE(e.find("expects FP32"), std::string::npos) << e;
  e = error("/v2/models/affine/infer", X({1, 2, 3}, {1, 3}), 400);
  EXPECT_NE(e.find("shape [1,3]"), std::string::npos) << e;
  EXPECT_NE(e.find("[-1,4]"), std::string::npos) << e;
  e = error("/v2/models/affine/infer", X(std::vector<float>(36, 1), {9, 4}), 400);
  EXPECT_NE(e.find("batch of 9"), std::string::npos) << e;
  EXPECT_EQ(Infer(*host, "/v2/models/affine/infer", json::object()).status, 400);
  serve::Request truncated;
  truncated.method = "POST";
  truncated.path = "/v2/models/affine/infer";
  truncated.headers["inference-header-content-length"] = "500";
  truncated.body = R"({"inputs":[]})";
  EXPECT_EQ(host->Handle(truncated).status, 400);
}

TEST_F(ModelHostTest, RequestsThatArriveTogetherRunAsOneBatch) {
  AddModel("slow", std::string(kAffine) + R"(
parameters { key: "delay_ms" value { string_value: "30" } }
dynamic_batching { max_queue_delay_microseconds: 20000 })",
           {1});
  auto host = Host();
  ASSERT_TRUE(host->Apply(Models({"slow"})).ok());
  std::vector<std::future<serve::Response>> answers;
  for (int i = 0; i < 8; ++i) {
    answers.push_back(std::async(std::launch::async, [&, i] {
      float f = static_cast<float>(i);
      return Infer(*host, "/v2/models/slow/infer", X({f, f, f, f}));
    }));
  }
  for (int i = 0; i < 8; ++i) {
    serve::Response r = answers[i].get();
    ASSERT_EQ(r.status, 200) << r.body;
    float want = 2.0f * static_cast<float>(i) + 1;
    EXPECT_EQ(Y(r), (std::vector<float>{want, want, want, want}));  // split back in order
  }
  std::string metrics = host->MetricsText("slow#1");
  // Eight requests, fewer runs: batches formed.
  EXPECT_NE(metrics.find("lumen_model_requests_total{model=\"slow\",replica=\"slow#1\"} 8"),
            std::string::npos)
      << metrics;
  auto at = metrics.find("lumen_model_batch_size_count{model=\"slow\"");
  ASSERT_NE(at, std::string::npos);
  int runs = std::stoi(metrics.substr(metrics.find("} ", at) + 2));
  EXPECT_LT(runs, 8) << metrics;
}

TEST_F(ModelHostTest, NewVersionsSwapInAndAFailedLoadKeepsTheOldOne) {
  std::string config =
      std::string(kAffine) + "parameters { key: \"tag_version\" value { string_value: \"1\" } }\n";
  AddModel("m", config, {1});
  auto host = Host();
  ASSERT_TRUE(host->Apply(Models({"m"})).ok());
  EXPECT_EQ(Y(Infer(*host, "/v2/models/m/infer", X({0, 0, 0, 0})))[0], 1001);
  AddModel("m", config, {2});  // the latest version is now 2
  ASSERT_TRUE(host->Apply(Models({"m"})).ok());
  EXPECT_EQ(Y(Infer(*host, "/v2/models/m/infer", X({0, 0, 0, 0})))[0], 2001);
  EXPECT_EQ(Infer(*host, "/v2/models/m/versions/1/infer", X({0, 0, 0, 0})).status, 404);

  // Version 3 does not load: 2 keeps serving, the reason is in the status.
  AddModel("m", config + "parameters { key: \"fail\" value { string_value: \"bad weights\" } }\n",
           {3});
  absl::Status s = host->Apply(Models({"m"}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bad weights"), std::string::npos) << s;
  EXPECT_EQ(Y(Infer(*host, "/v2/models/m/infer", X({0, 0, 0, 0})))[0], 2001);
  EXPECT_NE(host->Status()["m"]["reason"].get<std::string>().find("bad weights"),
            std::string::npos);
}

TEST_F(ModelHostTest, MultiplexedModelsLoadOnDemandWithinTheLimit) {
  AddModel("a", kAffine, {1});
  AddModel("b", std::string(kAffine) + "parameters { key: \"b\" value { string_value: \"5\" } }",
           {1});
  auto host = Host(/*max_loaded=*/1);
  ASSERT_TRUE(host->Apply(Models({"a", "b"})).ok());
  EXPECT_TRUE(host->Loaded().empty());
  EXPECT_EQ(Y(Infer(*host, "/v2/models/a/infer", X({1, 1, 1, 1})))[0], 3);
  EXPECT_EQ(host->Loaded(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Y(Infer(*host, "/v2/models/b/infer", X({1, 1, 1, 1})))[0], 7);
  EXPECT_EQ(host->Loaded(), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Y(Infer(*host, "/v2/models/a/infer", X({1, 1, 1, 1})))[0], 3);
}

}  // namespace
}  // namespace lumen::models
