// The serve config: good files parse, bad ones say field, line and fix.
#include "serve/config.h"
#include "serve/model_apps.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace lumen::serve {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("lumen_config_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_ / "build");
    std::ofstream(dir_ / "build" / "libapp.so") << "not really";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  absl::StatusOr<ServeConfig> Parse(const std::string& yaml) {
    return ParseServeConfig(yaml, "serve.yaml", dir_.string());
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigTest, TheIssuesExampleParses) {
  auto c = Parse(R"(
http: {host: 127.0.0.1, port: 8000}
grpc: {port: 9000}
applications:
  - name: ocr
    route_prefix: /ocr
    code: ./build/libapp.so
    ingress: Pipeline
    deployments:
      - name: Pipeline
      - name: Detector
        num_replicas: 2
        resources: {CPU: 1}
        max_ongoing_requests: 8
        max_queued_requests: 100
        router: swrr          # pow2 (default) | swrr | queue | hash
        user_config: {threshold: 0.5}
        autoscaling: {min_replicas: 1, max_replicas: 8, target_ongoing_requests: 2,
                      upscale_delay_s: 3, downscale_delay_s: 60}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http_port, 8000);
  EXPECT_EQ(c->grpc_port, 9000);
  ASSERT_EQ(c->applications.size(), 1u);
  const AppConfig& app = c->applications[0];
  EXPECT_EQ(app.route_prefix, "/ocr");
  EXPECT_EQ(app.ingress, "Pipeline");
  ASSERT_EQ(app.code.size(), 1u);
  EXPECT_TRUE(std::filesystem::path(app.code[0]).is_absolute());
  const DeploymentConfig* d = app.Find("Detector");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->cls, "Detector");
  EXPECT_EQ(d->router, "swrr");
  EXPECT_DOUBLE_EQ(d->user_config["threshold"].get<double>(), 0.5);
  ASSERT_TRUE(d->autoscaling.has_value());
  EXPECT_EQ(d->autoscaling->max_replicas, 8);
  EXPECT_DOUBLE_EQ(d->autoscaling->downscale_delay_s, 60);
  EXPECT_EQ(app.Find("Pipeline")->num_replicas, 1) << "defaults";
}

TEST_F(ConfigTest, BadFilesNameTheFieldTheLineAndTheFix) {
  struct Case {
    std::string yaml;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n        num_replicas: two\n",
       {"serve.yaml:5", "applications[0].deployments[0].num_replicas", "whole number", "Fix:"}},
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n        routr: swrr\n",
       {"serve.yaml:5", "routr", "unknown field", "router"}},
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n        router: fastest\n",
       {"serve.yaml:5", "unknown router 'fastest'", "pow2"}},
      {"applications:\n  - name: a\n    ingress: Nope\n    deployments:\n      - name: D\n",
       {"serve.yaml:3", "ingress", "no deployment named 'Nope'"}},
      {"applications:\n  - name: a\n    code: ./missing.so\n    deployments:\n      - name: D\n",
       {"serve.yaml:3", "code", "no file", "missing.so"}},
      {"applications:\n  - name: a\n    route_prefix: ocr\n    deployments:\n      - name: D\n",
       {"serve.yaml:3", "route_prefix", "must start with '/'"}},
      {"applications:\n  - name: a\n    deployments: []\n", {"deployments", "missing or empty"}},
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n  - name: a\n    "
       "deployments:\n      - name: D\n",
       {"serve.yaml:5", "used twice"}},
      {"applications:\n  - name: a\n   deployments: [\n", {"serve.yaml:", "not valid YAML"}},
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n        autoscaling: "
       "{min_replicas: 4, max_replicas: 2}\n",
       {"serve.yaml:5", "max_replicas", "below min_replicas"}},
      {"http: {port: 99999}\napplications: []\n", {"http.port", "out of range"}},
      {"applications:\n  - name: a\n    deployments:\n      - name: D\n        "
       "max_ongoing_requests: 2\n        batching: {max_batch_size: 4}\n",
       {"serve.yaml:6", "batching.max_batch_size", "above max_ongoing_requests"}},
  };
  for (const auto& c : cases) {
    auto parsed = Parse(c.yaml);
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    for (const auto& e : c.expect) {
      EXPECT_NE(parsed.status().message().find(e), std::string::npos)
          << "'" << e << "' missing from: " << parsed.status().message();
    }
  }
}

TEST_F(ConfigTest, ValidateChecksConfigsBuiltInCode) {
  ServeConfig c;
  AppConfig app;
  app.name = "a";
  app.ingress = "D";
  DeploymentConfig d;
  d.name = "D";
  d.router = "bogus";
  app.deployments.push_back(d);
  c.applications.push_back(app);
  EXPECT_FALSE(ValidateServeConfig(c).ok());
  c.applications[0].deployments[0].router = "queue";
  EXPECT_TRUE(ValidateServeConfig(c).ok());
}

}  // namespace
}  // namespace lumen::serve

namespace lumen::serve {
namespace {

std::string OneApp(const std::string& deployment_fields) {
  return "applications:\n  - name: a\n    deployments:\n      - {name: Echo" + deployment_fields +
         "}\n";
}

TEST(ConfigBoundsTest, TimeoutsMustBeFiniteAndAtMostADay) {
  for (std::string bad : {".inf", "1e300", ".nan", "86401"}) {
    auto c = ParseServeConfig(OneApp(", request_timeout_s: " + bad), "t.yaml", "/");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("t.yaml:4"), std::string::npos) << c.status();
    EXPECT_NE(c.status().message().find("request_timeout_s"), std::string::npos) << c.status();
  }
  EXPECT_TRUE(ParseServeConfig(OneApp(", request_timeout_s: 86400"), "t.yaml", "/").ok());
}

TEST(ConfigBoundsTest, AnAliasBombIsRefusedQuickly) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
    prev = c;
  }
  auto c = ParseServeConfig(bomb + OneApp(", user_config: *j"), "bomb.yaml", "/");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("alias"), std::string::npos) << c.status();
  // Few aliases that still expand to a lot are caught while converting.
  std::string list = "[";
  for (int i = 0; i < 30000; ++i) list += i ? ",1" : "1";
  list += "]";
  auto big = ParseServeConfig(
      "applications:\n  - name: a\n    deployments:\n      - name: Echo\n        user_config: &u " +
          list + "\n        init_args: {a: *u, b: *u, c: *u, d: *u}\n",
      "wide.yaml", "/");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("expands to more than"), std::string::npos) << big.status();
}

TEST(ConfigBoundsTest, DeepNestingBytesThatAreNotUtf8AndHugeFilesAreRefused) {
  auto deep = ParseServeConfig(
      OneApp(", user_config: " + std::string(100, '[') + std::string(100, ']')), "deep.yaml", "/");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("deeper than 64"), std::string::npos) << deep.status();
  auto bytes = ParseServeConfig(OneApp(", user_config: {k: \"\xff\xfe\"}"), "b.yaml", "/");
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("b.yaml:4: bytes that are not UTF-8"), std::string::npos)
      << bytes.status();
  auto huge = ParseServeConfig(OneApp("") + "# " + std::string(2 << 20, 'x') + "\n", "h.yaml", "/");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("bytes is more than"), std::string::npos);
}

}  // namespace
}  // namespace lumen::serve

namespace lumen::serve {
namespace {

TEST_F(ConfigTest, ModelsAndCachesParseAndExpand) {
  std::filesystem::create_directories(dir_ / "models");
  auto c = Parse(R"(
applications:
  - name: ml
    route_prefix: /ml
    code: ./build/libapp.so
    cache: {threshold: 0.9, max_entries: 50, ttl_s: 30, resources: {CPU: 0.5}}
    deployments:
      - name: Front
    models:
      - repository: ./models
        names: [a, b]
        num_replicas: 2
        resources: {CPU: 1, GPU: 1}
        cache: {embedder: image}
      - repository: models
        multiplex: {name: customers, max_models_per_replica: 4}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const AppConfig& app = c->applications[0];
  ASSERT_EQ(app.models.size(), 2u);
  EXPECT_EQ(app.models[0].repository, std::filesystem::canonical(dir_ / "models").string());
  EXPECT_EQ(app.models[0].names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(app.models[0].settings.num_replicas, 2);
  EXPECT_EQ(app.models[0].settings.resources.at("GPU"), 1);
  ASSERT_TRUE(app.models[0].cache.has_value());
  EXPECT_EQ(app.models[0].cache->embedder, "image");
  EXPECT_EQ(app.models[1].multiplex, "customers");
  EXPECT_EQ(app.models[1].max_models_per_replica, 4);
  ASSERT_TRUE(app.cache.has_value());
  EXPECT_EQ(app.cache->max_entries, 50);
  EXPECT_EQ(app.cache->settings.resources.at("CPU"), 0.5);

  // The application's cache becomes its ingress and forwards to the old one.
  AppConfig expanded = app;
  ExpandAppCache(&expanded);
  EXPECT_EQ(expanded.ingress, "Front-cache");
  const DeploymentConfig* cache = expanded.Find("Front-cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->cls, "lumen.Cache");
  EXPECT_EQ(cache->init_args["target"], "Front");
  EXPECT_EQ(cache->init_args["max_entries"], 50);
  EXPECT_EQ(cache->resources.at("CPU"), 0.5);
}

TEST_F(ConfigTest, ModelAndCacheMistakesSayWhatToWrite) {
  auto error = [&](const std::string& yaml) {
    auto c = Parse(yaml);
    return c.ok() ? std::string("ok") : std::string(c.status().message());
  };
  EXPECT_NE(error("applications:\n  - name: ml\n    models:\n      - names: [a]\n")
                .find("models[0].repository: missing"),
            std::string::npos);
  EXPECT_NE(error("applications:\n  - name: ml\n    models:\n      - repository: ./nope\n")
                .find("no folder"),
            std::string::npos);
  std::filesystem::create_directories(dir_ / "models");
  EXPECT_NE(error("applications:\n  - name: ml\n    models:\n      - repository: ./models\n"
                  "        class: X\n")
                .find("is not a model setting"),
            std::string::npos);
  EXPECT_NE(error("applications:\n  - name: ml\n    models:\n      - repository: ./models\n"
                  "        cache: {embedder: audio}\n")
                .find("unknown embedder 'audio'"),
            std::string::npos);
  EXPECT_NE(error("applications:\n  - name: ml\n    models:\n      - repository: ./models\n"
                  "        cache: {threshold: 2}\n")
                .find("threshold"),
            std::string::npos);
}

}  // namespace
}  // namespace lumen::serve
