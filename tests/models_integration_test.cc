// The model layer on a real two-node cluster: a model repository deployed
// through the serve file's `models:`, reached over KServe v2 HTTP and gRPC
// on the proxies; every protocol error; version swaps and a replica killed
// with SIGKILL under steady load with no failed request; files reaching
// both nodes by digest (the repository is gone before replicas start).
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <filesystem>

#include "proto/grpc_service.grpc.pb.h"
#include "serve_fixture.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;

class ModelsTest : public ServeFixture {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lumen_models_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    ServeFixture::TearDown();
    fs::remove_all(root_);
  }

  // <root>/<repo>/<model>/{config.pbtxt, V/libaffine.so}
  std::string AddModel(const std::string& repo, const std::string& model,
                       const std::string& extra_config, std::vector<int> versions) {
    fs::path dir = fs::path(root_) / repo / model;
    fs::create_directories(dir);
    std::ofstream(dir / "config.pbtxt") << R"(backend: "cpp"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
parameters { key: "class" value { string_value: "Affine" } }
parameters { key: "a" value { string_value: "2" } }
parameters { key: "b" value { string_value: "1" } }
)" << extra_config;
    for (int v : versions) {
      fs::create_directories(dir / std::to_string(v));
      fs::copy_file(LUMEN_TEST_MODEL_AFFINE, dir / std::to_string(v) / "libaffine.so",
                    fs::copy_options::overwrite_existing);
    }
    return (fs::path(root_) / repo).string();
  }

  // `cpus` per replica: 3 keeps two replicas off one 4-CPU node.
  static std::string ModelsYaml(const std::string& repo, int replicas = 2, int cpus = 0) {
    return "  - name: ml\n    models:\n      - repository: " + repo +
           "\n        num_replicas: " + std::to_string(replicas) +
           "\n        resources: {CPU: " + (cpus > 0 ? std::to_string(cpus) : std::string("0.5")) +
           "}\n";
  }

  static std::string X(float v, int rows = 1) {
    Json data = Json::array();
    for (int i = 0; i < 4 * rows; ++i) data.push_back(v);
    return Json({{"inputs",
                  {{{"name", "X"}, {"datatype", "FP32"}, {"shape", {rows, 4}}, {"data", data}}}}})
        .dump();
  }
  // The first output element of an answer, or NaN.
  static float First(const absl::StatusOr<Response>& r) {
    if (!r.ok() || r->status != 200) return std::nanf("");
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_object() ? j["outputs"][0]["data"][0].get<float>() : std::nanf("");
  }
  static std::string Error(const absl::StatusOr<Response>& r) {
    if (!r.ok()) return r.status().ToString();
    Json j = Json::parse(r->body, nullptr, false);
    return std::to_string(r->status) + " " + (j.is_object() ? j.value("error", "") : r->body);
  }

  // Steady inference from `threads` threads; an answer is good when it is
  // 2x+1 for one of the versions (+1000 per version with tag_version).
  void StartInfer(Load* load, const std::string& model, int threads) {
    int port = http_port_;
    for (int i = 0; i < threads; ++i) {
      load->threads.emplace_back([load, model, port] {
        while (!load->stop) {
          auto r = HttpCall("127.0.0.1", port, "POST", "/v2/models/" + model + "/infer", X(1));
          float y = First(r);
          if (!std::isnan(y) && std::fmod(y, 1000.0f) == 3.0f) {
            load->ok++;
          } else {
            load->failed++;
            std::lock_guard<std::mutex> lock(load->mu);
            load->last_error = Error(r);
          }
        }
      });
    }
  }

  std::string root_;
};

TEST_F(ModelsTest, ServesV2OverHttpOnBothNodesWithoutASharedFileSystem) {
  std::string repo = AddModel("repo", "affine", "optimization { priority: PRIORITY_MAX }\n", {1});
  auto deployed = admin_->DeployText("applications:\n" + ModelsYaml(repo, 2, 3), "m.yaml", "/");
  ASSERT_TRUE(deployed.ok()) << deployed.status();
  // The config's unsupported field is named, not silently dropped.
  EXPECT_NE(serve::DumpJson((*deployed)["warnings"]).find("optimization (line 8)"),
            std::string::npos)
      << serve::DumpJson(*deployed);
  fs::remove_all(repo);  // replicas get the files from the cluster, by digest
  std::set<std::string> nodes;
  ASSERT_TRUE(WaitUntil(
      [&] {
        nodes.clear();
        Json status = Status();
        for (const auto& r : status["applications"]["ml"]["deployments"]["affine"]["replicas"]) {
          if (r["state"] == "RUNNING") nodes.insert(r["node"].get<std::string>());
        }
        auto ready = GetPath("/v2/models/affine/ready");
        return nodes.size() == 2 && ready.ok() && ready->status == 200;
      },
      60'000))
      << serve::DumpJson(Status(), 2);
  EXPECT_EQ(nodes.size(), 2u) << "replicas should spread over both nodes";

  auto r = Post("/v2/models/affine/infer", X(3, 2));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["outputs"][0]["shape"], Json::array({2, 4}));
  EXPECT_EQ(j["outputs"][0]["data"][7], 7.0);  // 2*3+1, computed here too

  // The binary tensor extension, both ways.
  std::string header =
      R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1,4],"parameters":{"binary_data_size":16}}],)"
      R"("outputs":[{"name":"Y","parameters":{"binary_data":true}}]})";
  float in[4] = {1, 2, 3, 4};
  std::string body = header + std::string(reinterpret_cast<char*>(in), 16);
  r = Post("/v2/models/affine/infer", body,
           {{"inference-header-content-length", std::to_string(header.size())}});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  size_t json_len = std::stoul(r->headers["inference-header-content-length"]);
  ASSERT_EQ(r->body.size(), json_len + 16);
  float out[4];
  std::memcpy(out, r->body.data() + json_len, 16);
  EXPECT_EQ(out[3], 9.0f);

  EXPECT_EQ(GetPath("/v2/health/live")->status, 200);
  EXPECT_EQ(GetPath("/v2/health/ready")->status, 200);
  EXPECT_EQ(GetPath("/v2/models/affine/ready")->status, 200);
  EXPECT_EQ(GetPath("/v2/models/affine/versions/1/ready")->status, 200);
  Json meta = Json::parse(GetPath("/v2/models/affine")->body);
  EXPECT_EQ(meta["inputs"][0]["shape"], Json::array({-1, 4}));
  Json index = Json::parse(Post("/v2/repository/index", "{}")->body);
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0]["name"], "affine");
  EXPECT_EQ(index[0]["state"], "READY");
  // Per-model metrics reach the proxy's /metrics.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto m = GetPath("/metrics");
        return m.ok() &&
               m->body.find("lumen_model_requests_total{model=\"affine\"") != std::string::npos;
      },
      10'000));
}

TEST_F(ModelsTest, EveryProtocolErrorOverHttpAndGrpc) {
  std::string repo = AddModel("repo", "affine", "", {1});
  AddModel("repo", "slow",
           "parameters { key: \"load_delay_ms\" value { string_value: \"4000\" } }\n", {1});
  ASSERT_TRUE(DeployNoWait("applications:\n" + ModelsYaml(repo, 1)).ok());
  // A model still loading: 503 with its state.
  std::string seen;
  ASSERT_TRUE(WaitUntil(
      [&] {
        seen = Error(Post("/v2/models/slow/infer", X(1)));
        return seen.rfind("503", 0) == 0;
      },
      20'000))
      << seen;
  EXPECT_NE(seen.find("LOADING"), std::string::npos) << seen;
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "affine") == 1 && Running("ml", "slow") == 1; },
                        60'000));

  auto expect = [&](const std::string& path, const std::string& body, int status,
                    const std::string& words, std::map<std::string, std::string> headers = {}) {
    std::string e = Error(Post(path, body, headers));
    EXPECT_EQ(e.substr(0, 3), std::to_string(status)) << e;
    EXPECT_NE(e.find(words), std::string::npos) << e;
  };
  expect("/v2/models/nope/infer", X(1), 404, "unknown model 'nope'");
  expect("/v2/models/affine/versions/7/infer", X(1), 404, "no version 7");
  std::string wrong = X(1);
  wrong.replace(wrong.find("\"X\""), 3, "\"Z\"");
  expect("/v2/models/affine/infer", wrong, 400, "no input 'Z'");
  expect("/v2/models/affine/infer",
         R"({"inputs":[{"name":"X","datatype":"INT64","shape":[1,4],"data":[1,2,3,4]}]})", 400,
         "expects FP32");
  expect("/v2/models/affine/infer",
         R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]})", 400,
         "expects [-1,4]");
  std::string cut = R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1,4],)"
                    R"("parameters":{"binary_data_size":16}}]})";
  expect("/v2/models/affine/infer", cut + "abc", 400, "'X'",
         {{"inference-header-content-length", std::to_string(cut.size())}});
  expect("/v2/models/affine/infer", "{not json", 400, "");

  // gRPC: inference.GRPCInferenceService on the same proxy.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    inference::ServerLiveRequest in;
    inference::ServerLiveResponse out;
    ASSERT_TRUE(stub->ServerLive(&ctx, in, &out).ok());
    EXPECT_TRUE(out.live());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest in;
    in.set_name("affine");
    inference::ModelMetadataResponse out;
    grpc::Status s = stub->ModelMetadata(&ctx, in, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(out.inputs_size(), 1);
    EXPECT_EQ(out.inputs(0).datatype(), "FP32");
  }
  auto infer = [&](const std::string& model, const std::string& datatype, int64_t cols,
                   inference::ModelInferResponse* out) {
    grpc::ClientContext ctx;
    inference::ModelInferRequest in;
    in.set_model_name(model);
    auto* t = in.add_inputs();
    t->set_name("X");
    t->set_datatype(datatype);
    t->add_shape(1);
    t->add_shape(cols);
    std::vector<float> v(static_cast<size_t>(cols), 5.0f);
    in.add_raw_input_contents(std::string(reinterpret_cast<char*>(v.data()), v.size() * 4));
    return stub->ModelInfer(&ctx, in, out);
  };
  inference::ModelInferResponse out;
  grpc::Status s = infer("affine", "FP32", 4, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(out.raw_output_contents_size(), 1);
  float y[4];
  std::memcpy(y, out.raw_output_contents(0).data(), 16);
  EXPECT_EQ(y[0], 11.0f);
  s = infer("nope", "FP32", 4, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  s = infer("affine", "FP32", 3, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("'X'"), std::string::npos) << s.error_message();
  s = infer("affine", "INT32", 4, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

// The repository API's unload scales the model to zero (its replicas and
// resources go), load brings it back and answers once it is ready; both
// take the cluster token, over HTTP and gRPC.
TEST_F(ModelsTest, RepositoryUnloadAndLoadTakeTheTokenAndMoveTheReplicas) {
  std::string repo = AddModel("repo", "affine", "", {1});
  Deploy(ModelsYaml(repo, 1));
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "affine") == 1; }, 60'000));
  std::string token = internal::CurrentRuntime()->ClusterToken();
  std::map<std::string, std::string> auth = {{"authorization", "Bearer " + token}};
  const std::string unload = "/v2/repository/models/affine/unload";
  EXPECT_EQ(Error(Post(unload, "")).substr(0, 3), "401");
  EXPECT_EQ(Error(Post(unload, "", {{"authorization", "Bearer nope"}})).substr(0, 3), "401");
  EXPECT_EQ(Error(Post("/v2/repository/models/nope/unload", "", auth)).substr(0, 3), "404");
  std::string named_file = Error(Post("/v2/repository/models/affine/load",
                                      R"({"parameters":{"file:1/model.onnx":"AAAA"}})", auth));
  EXPECT_EQ(named_file.substr(0, 3), "400") << named_file;
  EXPECT_EQ(Running("ml", "affine"), 1) << "refused calls changed nothing";

  auto r = Post(unload, "", auth);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  std::string after = Error(Post("/v2/models/affine/infer", X(1)));
  EXPECT_EQ(after.substr(0, 3), "503") << after;
  EXPECT_NE(after.find("unloaded"), std::string::npos) << after;
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "affine") == 0; }, 30'000))
      << serve::DumpJson(Status(), 2);
  auto index = Post("/v2/repository/index", "{}");
  ASSERT_TRUE(index.ok());
  EXPECT_NE(index->body.find("UNAVAILABLE"), std::string::npos) << index->body;

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    inference::RepositoryModelLoadRequest in;
    in.set_model_name("affine");
    inference::RepositoryModelLoadResponse out;
    grpc::Status s = stub->RepositoryModelLoad(&ctx, in, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    inference::RepositoryModelLoadRequest in;
    in.set_model_name("affine");
    inference::RepositoryModelLoadResponse out;
    grpc::Status s = stub->RepositoryModelLoad(&ctx, in, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // Loaded means ready: the next request is served.
  EXPECT_EQ(First(Post("/v2/models/affine/infer", X(1))), 3.0f);
  EXPECT_EQ(Running("ml", "affine"), 1);
}

TEST_F(ModelsTest, VersionSwapsAndAKilledReplicaUnderLoadFailNothing) {
  std::string tag = "parameters { key: \"tag_version\" value { string_value: \"1\" } }\n";
  std::string repo = AddModel("repo", "m", tag, {1});
  Deploy(ModelsYaml(repo));
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "m") == 2; }, 60'000));
  Load load;
  StartInfer(&load, "m", 4);
  ASSERT_TRUE(WaitUntil([&] { return load.ok > 50; }, 20'000));
  // Versions 2..11: each loads beside the last, traffic moves when ready.
  for (int v = 2; v <= 11; ++v) {
    AddModel("repo", "m", tag, {v});
    ASSERT_TRUE(DeployNoWait("applications:\n" + ModelsYaml(repo)).ok());
    float want = 1000.0f * static_cast<float>(v) + 3;
    ASSERT_TRUE(WaitUntil([&] { return First(Post("/v2/models/m/infer", X(1))) == want; }, 30'000))
        << "version " << v;
  }
  // A replica killed outright: its requests are resent to the other.
  int pid = Status()["applications"]["ml"]["deployments"]["m"]["replicas"][0]["pid"].get<int>();
  int before = load.ok;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "m") == 2 && load.ok > before + 200; }, 60'000));
  load.Stop();
  EXPECT_EQ(load.failed, 0) << load.last_error;
  EXPECT_GT(load.ok, 300);
  // A version that fails to load: the old one keeps serving, the status says why.
  AddModel("repo", "m", tag + "parameters { key: \"fail\" value { string_value: \"corrupt\" } }\n",
           {12});
  ASSERT_TRUE(DeployNoWait("applications:\n" + ModelsYaml(repo)).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Status()["applications"]["ml"]["deployments"]["m"]
                   .value("message", "")
                   .find("corrupt") != std::string::npos;
      },
      30'000))
      << serve::DumpJson(Status(), 2);
  EXPECT_EQ(First(Post("/v2/models/m/infer", X(1))), 11003.0f);
}

// KIND_GPU: each replica asks for a GPU, lands on the node that has them
// and holds its own one (the status shows which; CUDA_VISIBLE_DEVICES in
// its worker names the same).
TEST_F(ModelsTest, GpuModelsGetAGpuEachFromTheNode) {
  std::string repo = AddModel("gpu", "g", "instance_group [ { count: 1 kind: KIND_GPU } ]\n", {1});
  Deploy(ModelsYaml(repo));
  std::set<int> gpus;
  std::set<std::string> nodes;
  ASSERT_TRUE(WaitUntil(
      [&] {
        gpus.clear();
        nodes.clear();
        Json status = Status();  // kept: the loop walks into it
        for (const auto& r : status["applications"]["ml"]["deployments"]["g"]["replicas"]) {
          if (r["state"] != "RUNNING") continue;
          nodes.insert(r["node"].get<std::string>());
          for (const auto& g : r.value("gpus", Json::array())) gpus.insert(g.get<int>());
        }
        return gpus.size() == 2;
      },
      60'000))
      << serve::DumpJson(Status(), 2);
  EXPECT_EQ(gpus, (std::set<int>{0, 1}));
  EXPECT_EQ(nodes.size(), 1u) << "only one node has GPUs";
  EXPECT_EQ(First(Post("/v2/models/g/infer", X(1))), 3.0f);
}

TEST_F(ModelsTest, MultiplexedModelsLoadWhereAskedAndStayWhereLoaded) {
  std::string repo;
  for (const char* name : {"c1", "c2", "c3", "c4", "c5", "c6"}) {
    repo = AddModel("customers", name, "", {1});
  }
  Deploy("  - name: ml\n    models:\n      - repository: " + repo +
         "\n        multiplex: {name: customers, max_models_per_replica: 2}"
         "\n        num_replicas: 2\n        resources: {CPU: 0.5}\n");
  ASSERT_TRUE(WaitUntil([&] { return Running("ml", "customers") == 2; }, 60'000));
  // Every model answers, whichever replica loads it.
  for (const char* name : {"c1", "c2", "c3", "c4", "c5", "c6"}) {
    EXPECT_EQ(First(Post(std::string("/v2/models/") + name + "/infer", X(1))), 3.0f) << name;
  }
  // At most two loaded per replica.
  auto loaded = [&](const std::string& model) {
    int n = 0;
    Json status = Status();  // kept: the loop walks into it
    for (const auto& r : status["applications"]["ml"]["deployments"]["customers"]["replicas"]) {
      auto models = r.value("models", Json::array());
      EXPECT_LE(models.size(), 2u);
      for (const auto& m : models) n += m == model;
    }
    return n;
  };
  // Once the table says where c1 is, its requests go there: it is loaded
  // on one replica only, however many requests come.
  ASSERT_EQ(First(Post("/v2/models/c1/infer", X(1))), 3.0f);
  ASSERT_TRUE(WaitUntil([&] { return loaded("c1") >= 1; }, 10'000)) << serve::DumpJson(Status(), 2);
  int before = loaded("c1");
  for (int i = 0; i < 40; ++i) ASSERT_EQ(First(Post("/v2/models/c1/infer", X(1))), 3.0f);
  EXPECT_EQ(loaded("c1"), before) << serve::DumpJson(Status(), 2);
}

TEST_F(ModelsTest, ASemanticCacheAnswersParaphrasesWithoutTheTarget) {
  // Echo answers with the request's own body, so a hit shows by answering
  // with the first question's words.
  Deploy(R"(  - name: qa
    route_prefix: /qa
    code: $APP
    cache: {threshold: 0.75, max_entries: 100, ttl_s: 600, resources: {CPU: 0.2}}
    deployments:
      - name: Echo
        resources: {CPU: 0.2}
)");
  ASSERT_TRUE(WaitUntil([&] { return Running("qa", "Echo-cache") == 1; }, 60'000))
      << serve::DumpJson(Status(), 2);
  auto first = Post("/qa", "What is the capital of France?");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->headers["x-lumen-cache"], "miss");
  auto again = Post("/qa", "what is the capital of france");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->headers["x-lumen-cache"], "hit");
  EXPECT_EQ(again->body, "What is the capital of France?") << "answered from the cache";
  auto other = Post("/qa", "How many legs does a spider have?");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->headers["x-lumen-cache"], "miss");
  EXPECT_EQ(other->body, "How many legs does a spider have?");
  // Hits and misses reach the proxy's /metrics.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto m = GetPath("/metrics");
        return m.ok() && m->body.find("lumen_cache_hits_total") != std::string::npos;
      },
      10'000));
}

}  // namespace
}  // namespace lumen
