// CacheService (what a lumen.Cache replica does, without a cluster),
// request splitting, the embedder registry and the model embedder against
// a stand-in model.
#include "models/cache/cache_service.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lumen/tensor.h"
#include "proto/grpc_service.pb.h"

namespace lumen::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

serve::Request Post(const std::string& path, const std::string& body) {
  serve::Request r;
  r.method = "POST";
  r.path = path;
  r.body = body;
  return r;
}

std::string V2Text(const std::string& text, const std::string& id = "") {
  Json j = {
      {"inputs", {{{"name", "TEXT"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {text}}}}}};
  if (!id.empty()) j["id"] = id;
  return j.dump();
}

// A target that answers with a counter, so tests see which call answered.
class Backend {
 public:
  ForwardFn Forward() {
    return [this](const serve::Request& r) {
      int n = ++calls;
      if (status != 200) return serve::Response::Error(status, "down");
      if (r.path.size() > 6 && r.path.substr(r.path.size() - 6) == "/infer") {
        Json req = Json::parse(r.body, nullptr, false);
        Json out = {
            {"model_name", "m"},
            {"outputs", {{{"name", "OUT"}, {"datatype", "INT32"}, {"shape", {1}}, {"data", {n}}}}}};
        if (req.is_object() && req.contains("id")) out["id"] = req["id"];
        return serve::Response::FromJson(out);
      }
      serve::Response resp = serve::Response::Text(absl::StrCat("answer ", n));
      if (stream) resp.chunks = {"more"};
      return resp;
    };
  }
  std::atomic<int> calls{0};
  int status = 200;
  bool stream = false;
};

std::unique_ptr<CacheService> Service(Backend* backend, const Json& init_args = {{"target", "T"}},
                                      std::string app = "app", const Clock* clock = nullptr) {
  auto config = ParseCacheConfig(init_args);
  EXPECT_TRUE(config.ok()) << config.status();
  auto embedder = MakeEmbedder(config->embedder, init_args);
  EXPECT_TRUE(embedder.ok()) << embedder.status();
  auto s = CacheService::Create(*config, std::move(*embedder), backend->Forward(), std::move(app),
                                "Cache#1", clock);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

TEST(CacheServiceTest, MissThenHitWithHeaders) {
  Backend backend;
  auto service = Service(&backend);
  serve::Response first = service->Handle(Post("/ask", "What is the capital of France?"));
  EXPECT_EQ(first.headers["x-lumen-cache"], "miss");
  EXPECT_EQ(first.body, "answer 1");
  serve::Response second = service->Handle(Post("/ask", "what's the capital city of france"));
  EXPECT_EQ(second.headers["x-lumen-cache"], "hit");
  EXPECT_EQ(second.body, "answer 1");
  double similarity = std::stod(second.headers["x-lumen-cache-similarity"]);
  EXPECT_GT(similarity, 0.7);
  EXPECT_LT(similarity, 1.0);
  EXPECT_EQ(backend.calls.load(), 1);
  serve::Response other = service->Handle(Post("/ask", "Who painted the Mona Lisa?"));
  EXPECT_EQ(other.headers["x-lumen-cache"], "miss");
  EXPECT_EQ(backend.calls.load(), 2);
}

TEST(CacheServiceTest, OnlyPlainOkAnswersAreStored) {
  Backend backend;
  auto service = Service(&backend);
  backend.status = 503;
  EXPECT_EQ(service->Handle(Post("/ask", "tell me a joke about cats")).status, 503);
  backend.status = 200;
  backend.stream = true;
  EXPECT_EQ(service->Handle(Post("/ask", "tell me a joke about cats")).headers["x-lumen-cache"],
            "miss");
  backend.stream = false;
  EXPECT_EQ(service->Handle(Post("/ask", "tell me a joke about cats")).headers["x-lumen-cache"],
            "miss");
  EXPECT_EQ(service->Handle(Post("/ask", "tell me a joke about cats")).headers["x-lumen-cache"],
            "hit");
  EXPECT_EQ(backend.calls.load(), 3);
}

TEST(CacheServiceTest, PathsAppsAndExactPartsIsolate) {
  Backend backend;
  auto service = Service(&backend);
  service->Handle(Post("/v1/ask", "What is the capital of France?"));
  EXPECT_EQ(
      service->Handle(Post("/v2/ask", "What is the capital of France?")).headers["x-lumen-cache"],
      "miss");
  // JSON: the prompt is compared by meaning, the rest exactly.
  auto json = [](const std::string& prompt, double temperature) {
    return Json{{"model", "small"}, {"prompt", prompt}, {"temperature", temperature}}.dump();
  };
  service->Handle(Post("/gen", json("Write a haiku about autumn leaves", 0.2)));
  EXPECT_EQ(service->Handle(Post("/gen", json("write a haiku about autumn leaves!", 0.2)))
                .headers["x-lumen-cache"],
            "hit");
  EXPECT_EQ(service->Handle(Post("/gen", json("Write a haiku about autumn leaves", 0.9)))
                .headers["x-lumen-cache"],
            "miss");
  // Another application's namespace differs even for the same request.
  Backend other_backend;
  auto other = Service(&other_backend, {{"target", "T"}}, "other-app");
  serve::Request r = Post("/v1/ask", "x y");
  RequestParts parts = SplitRequest(r);
  EXPECT_NE(service->Namespace(r, parts), other->Namespace(r, parts));
}

TEST(CacheServiceTest, V2AnswersEchoTheirOwnRequestId) {
  Backend backend;
  auto service = Service(&backend);
  const std::string path = "/v2/models/qa/infer";
  serve::Response first = service->Handle(Post(path, V2Text("How tall is Mount Everest?", "r1")));
  EXPECT_EQ(Json::parse(first.body)["id"], "r1");
  serve::Response second = service->Handle(Post(path, V2Text("how tall is mount everest", "r2")));
  ASSERT_EQ(second.headers["x-lumen-cache"], "hit");
  Json j = Json::parse(second.body);
  EXPECT_EQ(j["id"], "r2");
  EXPECT_EQ(j["outputs"][0]["data"][0], 1);
  serve::Response third = service->Handle(Post(path, V2Text("How tall is Mount Everest?")));
  ASSERT_EQ(third.headers["x-lumen-cache"], "hit");
  EXPECT_FALSE(Json::parse(third.body).contains("id"));
  // Another version of the model is another namespace.
  EXPECT_EQ(service
                ->Handle(Post("/v2/models/qa/versions/2/infer", V2Text("How tall is Mount "
                                                                       "Everest?")))
                .headers["x-lumen-cache"],
            "miss");
}

TEST(CacheServiceTest, CacheControlAndNothingToEmbedBypass) {
  Backend backend;
  auto service = Service(&backend);
  serve::Request r = Post("/ask", "Which planet is the largest?");
  r.headers["cache-control"] = "no-store";
  EXPECT_EQ(service->Handle(r).headers["x-lumen-cache"], "bypass");
  r.headers["cache-control"] = "no-cache";
  EXPECT_EQ(service->Handle(r).headers["x-lumen-cache"], "miss");  // looked past, but stored
  r.headers.clear();
  EXPECT_EQ(service->Handle(r).headers["x-lumen-cache"], "hit");
  serve::Request ready;
  ready.path = "/v2/models/qa/ready";
  EXPECT_EQ(service->Handle(ready).headers["x-lumen-cache"], "bypass");
  EXPECT_EQ(backend.calls.load(), 3);
}

TEST(CacheServiceTest, MetricsText) {
  Backend backend;
  auto service = Service(&backend, {{"target", "T"}, {"max_entries", 1}});
  service->Handle(Post("/ask", "first question about volcanoes"));
  service->Handle(Post("/ask", "first question about volcanoes"));
  service->Handle(Post("/ask", "second question on glaciers"));
  std::string text = service->MetricsText();
  const std::string labels = "{app=\"app\",replica=\"Cache#1\"}";
  EXPECT_THAT(text, HasSubstr("lumen_cache_hits_total" + labels + " 1\n"));
  EXPECT_THAT(text, HasSubstr("lumen_cache_misses_total" + labels + " 2\n"));
  EXPECT_THAT(text, HasSubstr("lumen_cache_entries" + labels + " 1\n"));
  EXPECT_THAT(text, HasSubstr("lumen_cache_evictions_total" + labels + " 1\n"));
  EXPECT_THAT(text, HasSubstr("lumen_cache_lookup_seconds_count" + labels + " 3\n"));
  EXPECT_THAT(text, HasSubstr("lumen_cache_lookup_seconds_bucket{app=\"app\",replica=\"Cache#1\","
                              "le=\"+Inf\"} 3\n"));
}

TEST(CacheConfigTest, Errors) {
  EXPECT_THAT(ParseCacheConfig(Json::object()).status().message(), HasSubstr("target"));
  EXPECT_THAT(ParseCacheConfig({{"target", "T"}, {"treshold", 0.9}}).status().message(),
              HasSubstr("unknown init_args key 'treshold'"));
  EXPECT_THAT(ParseCacheConfig({{"target", "T"}, {"threshold", 2}}).status().message(),
              HasSubstr("(-1, 1]"));
  EXPECT_THAT(ParseCacheConfig({{"target", "T"}, {"max_entries", -3}}).status().message(),
              HasSubstr("max_entries"));
  EXPECT_THAT(ParseCacheConfig({{"target", "T"}, {"text_fields", "prompt"}}).status().message(),
              HasSubstr("text_fields"));
  auto ok = ParseCacheConfig({{"target", "T"},
                              {"embedder", "image"},
                              {"threshold", 0.97},
                              {"ttl_s", 60},
                              {"text_fields", {"prompt"}}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->embedder, "image");
  EXPECT_FLOAT_EQ(*ok->threshold, 0.97f);
  EXPECT_EQ(ok->ttl_s, 60);
  EXPECT_THAT(ok->split.text_fields, ElementsAre("prompt"));
}

TEST(EmbedderRegistryTest, Kinds) {
  EXPECT_TRUE(MakeEmbedder("text").ok());
  EXPECT_TRUE(MakeEmbedder("image").ok());
  EXPECT_TRUE(MakeEmbedder("model:minilm").ok());
  EXPECT_TRUE(MakeEmbedder("model:group/minilm").ok());
  auto none = MakeEmbedder("bert");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("image, model, text"));
  EXPECT_THAT(MakeEmbedder("model:").status().message(), HasSubstr("model:NAME"));
  EXPECT_THAT(MakeEmbedder("text:x").status().message(), HasSubstr("no argument"));
}

TEST(SplitRequestTest, V2JsonAndRaw) {
  RequestParts v2 = SplitRequest(Post("/v2/models/m/infer", V2Text("hello there", "id-7")));
  EXPECT_EQ(v2.kind, RequestParts::Kind::kV2Http);
  EXPECT_THAT(v2.semantic, ElementsAre("hello there"));
  EXPECT_EQ(v2.v2_id, "id-7");
  EXPECT_EQ(v2.exact, SplitRequest(Post("/v2/models/m/infer", V2Text("bye", "id-8"))).exact);

  // Numeric inputs are exact.
  Json with_k = Json::parse(V2Text("hello there"));
  with_k["inputs"].push_back({{"name", "K"}, {"datatype", "INT32"}, {"shape", {1}}, {"data", {5}}});
  Json with_k6 = with_k;
  with_k6["inputs"][1]["data"][0] = 6;
  EXPECT_NE(SplitRequest(Post("/v2/models/m/infer", with_k.dump())).exact,
            SplitRequest(Post("/v2/models/m/infer", with_k6.dump())).exact);

  Json chat = {{"model", "small"},
               {"messages", {{{"role", "user"}, {"content", "What is a monad?"}}}},
               {"max_tokens", 64}};
  RequestParts j = SplitRequest(Post("/chat", chat.dump()));
  EXPECT_EQ(j.kind, RequestParts::Kind::kJson);
  EXPECT_THAT(j.semantic, ElementsAre("What is a monad?"));
  EXPECT_THAT(j.exact, HasSubstr("\"small\""));
  EXPECT_THAT(j.exact, HasSubstr("\"user\""));
  SplitOptions fields;
  fields.text_fields = {"model"};
  EXPECT_THAT(SplitRequest(Post("/chat", chat.dump()), fields).semantic, ElementsAre("small"));

  serve::Request raw = Post("/x", "plain words");
  raw.headers["content-type"] = "text/plain";
  RequestParts r = SplitRequest(raw);
  EXPECT_EQ(r.kind, RequestParts::Kind::kRaw);
  EXPECT_THAT(r.semantic, ElementsAre("plain words"));
  EXPECT_EQ(r.exact, "text/plain");
}

TEST(SplitRequestTest, Grpc) {
  inference::ModelInferRequest m;
  m.set_model_name("m");
  m.set_id("g1");
  auto* in = m.add_inputs();
  in->set_name("TEXT");
  in->set_datatype("BYTES");
  in->add_shape(1);
  in->mutable_contents()->add_bytes_contents("what is love");
  serve::Request r = Post("/v2/models/m/infer", m.SerializeAsString());
  r.headers["x-lumen-v2"] = "grpc";
  RequestParts parts = SplitRequest(r);
  EXPECT_EQ(parts.kind, RequestParts::Kind::kV2Grpc);
  EXPECT_THAT(parts.semantic, ElementsAre("what is love"));
  EXPECT_EQ(parts.v2_id, "g1");
}

// ---- model:NAME ---------------------------------------------------------------

// A stand-in embedding model: the text's length and vowel count.
absl::StatusOr<serve::Response> FakeModel(const serve::Request& r, std::vector<std::string>* seen) {
  auto parsed = Json::parse(r.body, nullptr, false);
  std::string text = parsed["inputs"][0]["data"][0];
  seen->push_back(r.path + " " + parsed["inputs"][0]["name"].get<std::string>() + " " + text);
  float vowels = 0;
  for (char c : text) vowels += std::string("aeiou").find(c) != std::string::npos;
  Json out = {{"outputs",
               {{{"name", "IDS"}, {"datatype", "INT64"}, {"shape", {1}}, {"data", {1}}},
                {{"name", "EMB"},
                 {"datatype", "FP32"},
                 {"shape", {1, 2}},
                 {"data", {{static_cast<float>(text.size()), vowels}}}}}}};
  return serve::Response::FromJson(out);
}

TEST(ModelEmbedderTest, CallsTheModelOverV2) {
  std::vector<std::string> seen;
  ModelEmbedderOptions o;
  o.model = "minilm";
  o.call = [&](serve::Request r) { return FakeModel(r, &seen); };
  auto embedder = MakeModelEmbedder(o);
  EXPECT_EQ(embedder->dim(), 0);
  auto v = embedder->Embed(Post("/v2/models/qa/infer", V2Text("banana")));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAre(6.0f, 3.0f));
  EXPECT_EQ(embedder->dim(), 2);
  EXPECT_THAT(seen, ElementsAre("/v2/models/minilm/infer TEXT banana"));
}

TEST(ModelEmbedderTest, FailuresSayWhat) {
  ModelEmbedderOptions o;
  o.model = "minilm";
  serve::Response r = serve::Response::FromJson(
      {{"outputs", {{{"name", "LABEL"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"x"}}}}}});
  EXPECT_THAT(ParseModelEmbedResponse(o, r).status().message(), HasSubstr("no FP32 output"));
  o.output = "LABEL";
  EXPECT_THAT(ParseModelEmbedResponse(o, r).status().message(), HasSubstr("is BYTES"));
  EXPECT_EQ(ParseModelEmbedResponse(o, serve::Response::Error(503, "busy")).status().code(),
            absl::StatusCode::kUnavailable);
  o.output = "";
  o.call = [](serve::Request) -> absl::StatusOr<serve::Response> {
    return absl::UnavailableError("no replica");
  };
  auto embedder = MakeModelEmbedder(o);
  EXPECT_EQ(embedder->Embed(Post("/x", "text")).status().code(), absl::StatusCode::kUnavailable);

  // The request it sends.
  o.output = "EMB";
  serve::Request sent = ModelEmbedRequest(o, "hi");
  Json j = Json::parse(sent.body);
  EXPECT_EQ(sent.path, "/v2/models/minilm/infer");
  EXPECT_EQ(j["inputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(j["outputs"][0]["name"], "EMB");
}

TEST(ModelEmbedderTest, CacheBypassesWhenTheModelFails) {
  Backend backend;
  auto config = ParseCacheConfig({{"target", "T"}, {"embedder", "model:minilm"}});
  ASSERT_TRUE(config.ok());
  ModelEmbedderOptions o;
  o.model = "minilm";
  bool up = false;
  std::vector<std::string> seen;
  o.call = [&](serve::Request r) -> absl::StatusOr<serve::Response> {
    if (!up) return absl::UnavailableError("no replica");
    return FakeModel(r, &seen);
  };
  auto service =
      CacheService::Create(*config, MakeModelEmbedder(o), backend.Forward(), "app", "Cache#1");
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ((*service)->Handle(Post("/ask", "banana")).headers["x-lumen-cache"], "bypass");
  up = true;
  EXPECT_EQ((*service)->Handle(Post("/ask", "banana")).headers["x-lumen-cache"], "miss");
  EXPECT_EQ((*service)->Handle(Post("/ask", "banana")).headers["x-lumen-cache"], "hit");
}

}  // namespace
}  // namespace lumen::models
