// Serving on a real two-node cluster (GCS, node managers, replica worker
// processes), driven over real HTTP: routing by prefix, composition,
// every router, backpressure codes, async answers, autoscaling up, down and
// from zero, reconfiguration, a rolling update and kill -9 of a replica
// under steady load with no failed request, bad configs and bad requests.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "proto/health.grpc.pb.h"
#include "proto/serve.grpc.pb.h"
#include "serve/channel.h"
#include "serve/client.h"
#include "serve/config.h"
#include "serve/http_client.h"
#include "serve/json_util.h"
#include "serve_fixture.h"
#include "test_util.h"

namespace lumen {
namespace {

class ServeTest : public ServeFixture {};

TEST_F(ServeTest, EveryNodeHasAProxyThatRoutesEveryApplication) {
  Deploy(EchoApp());
  // The other node's proxy is in the status, on a port of its own (both
  // nodes share this host), with a gRPC ingress too.
  Json proxies;
  ASSERT_TRUE(WaitUntil(
      [&] {
        proxies = Status()["proxies"];
        return proxies.size() == 2 && proxies[1]["state"] == "RUNNING";
      },
      30'000))
      << serve::DumpJson(Status()["proxies"], 2);
  EXPECT_NE(proxies[0]["node"], proxies[1]["node"]);
  EXPECT_FALSE(proxies[1]["grpc"].get<std::string>().empty());
  std::string head = GetRuntimeContext().node.Hex();
  std::string other = proxies[0]["node"] == head ? proxies[1]["http"] : proxies[0]["http"];
  int port = std::stoi(other.substr(other.rfind(':') + 1));
  EXPECT_NE(port, http_port_);
  // It learns the applications from the cluster: one deployed after it
  // started is served there, and a deleted one stops being served.
  auto via_other = [&](const std::string& path) {
    return HttpCall("127.0.0.1", port, "POST", path, "via-node-2");
  };
  ASSERT_TRUE(WaitUntil([&] {
    auto r = via_other("/echo");
    return r.ok() && r->status == 200 && r->body == "via-node-2";
  })) << "the node proxy never routed /echo";
  DeployNothing();
  ASSERT_TRUE(WaitUntil([&] {
    auto r = via_other("/echo");
    return r.ok() && r->status == 404;
  })) << "the node proxy still routes a deleted application";
}

TEST_F(ServeTest, AnAppsCodeIsUploadedAndShippedToItsReplicas) {
  // The cluster's job has only serve's libraries: the deploy uploads
  // libgreeter_app.so and its replicas fetch it, on both nodes.
  Deploy(R"(
  - name: greet
    route_prefix: /greet
    code: )" +
         std::string(LUMEN_GREETER_APP) +
         R"(
    deployments:
      - {name: Greeter, num_replicas: 2, resources: {CPU: 3}, init_args: {greeting: hi}}
)");
  auto r = Post("/greet", "lumen");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["text"], "hi, lumen");
  std::set<std::string> nodes;
  Json status = Status();  // kept: the loop walks into it
  for (const auto& rep : status["applications"]["greet"]["deployments"]["Greeter"]["replicas"]) {
    nodes.insert(rep["node"].get<std::string>());
  }
  EXPECT_EQ(nodes.size(), 2u) << "3 CPUs each: one replica per node";
  // A file that is not a library fails the deployment with the loader's
  // reason; the running app stays.
  testing::TempDir dir;
  std::string bad = dir.path() + "/libnot_code.so";
  std::ofstream(bad) << "not an ELF file";
  std::string text = "applications:\n  - name: greet\n    route_prefix: /greet\n    code: " +
                     std::string(LUMEN_GREETER_APP) +
                     "\n    deployments: [{name: Greeter, num_replicas: 2, resources: {CPU: 3}, "
                     "init_args: {greeting: hi}}]\n  - name: broken\n    route_prefix: /broken\n"
                     "    code: " +
                     bad + "\n    deployments: [{name: Greeter, resources: {CPU: 0.1}}]\n";
  ASSERT_TRUE(DeployNoWait(text).ok());
  ASSERT_TRUE(WaitUntil([&] {
    Json d = Status()["applications"]["broken"]["deployments"]["Greeter"];
    if (!d.is_object()) return false;
    return d["message"].get<std::string>().find("cannot load libnot_code.so") != std::string::npos;
  })) << serve::DumpJson(Status()["applications"]["broken"], 2);
  auto still = Post("/greet", "again");
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->status, 200) << still->body;
}

// A config file elsewhere names its code relative to where lumen runs (as
// the README's `lumen serve run examples/ocr/serve.yaml` does).
TEST_F(ServeTest, RelativeCodePathsAreFromWhereLumenRuns) {
  testing::TempDir dir;
  std::string relative =
      std::filesystem::relative(LUMEN_OCR_APP, std::filesystem::current_path()).string();
  ASSERT_EQ(relative.front() == '/', false) << relative;
  std::string path = dir.path() + "/serve.yaml";
  std::ofstream(path) << "applications:\n  - name: rel\n    route_prefix: /rel\n    code: " +
                             relative +
                             "\n    deployments: [{name: Echo, resources: {CPU: 0.1}}]\n";
  auto r = admin_->Deploy(path);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(admin_->WaitRunning(60'000).ok());
  auto echo = Post("/rel", "relative");
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->body, "relative");
}

TEST_F(ServeTest, RoutesByPrefixAndComposesDeployments) {
  Deploy(R"(
  - name: ocr
    route_prefix: /ocr
    code: $APP
    ingress: Pipeline
    deployments:
      - {name: Pipeline, resources: {CPU: 0.1}}
      - {name: Detector, num_replicas: 2, resources: {CPU: 0.1}, router: swrr}
      - {name: Recognize, num_replicas: 2, resources: {CPU: 0.1}}
)" + EchoApp());
  auto r = Post("/ocr", R"({"image": "read these words x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["text"], "READ THESE WORDS") << "one-letter boxes dropped";
  auto stream = Post("/ocr/stream", R"({"image": "two words"})");
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(stream->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(stream->body, "TWO\nWORDS\n");
  auto echo = Post("/echo/anything", "hello");
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->body, "hello");
  auto none = GetPath("/nothing-here");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 404);
  EXPECT_NE(none->body.find("/-/routes"), std::string::npos);
  // Replicas are spread by resources over both nodes and report where.
  std::set<std::string> nodes;
  ASSERT_TRUE(WaitUntil([&] {
    nodes.clear();
    Json s = Status();
    for (const auto& rep : s["applications"]["ocr"]["deployments"]["Detector"]["replicas"]) {
      if (!rep["node"].get<std::string>().empty()) nodes.insert(rep["node"].get<std::string>());
    }
    return nodes.size() >= 1;
  }));
  // Requests reach each replica over its data plane, which answers only
  // callers that present the cluster token.
  std::string address =
      Status()["applications"]["ocr"]["deployments"]["Recognize"]["replicas"][0]["address"];
  ASSERT_NE(address.rfind("127.0.0.1:", 0), std::string::npos) << address;
  auto direct = [&](const std::string& token) {
    serve::ReplicaChannel channel(address, token);
    std::promise<absl::StatusOr<Response>> answer;
    auto got = answer.get_future();
    serve::Request r;
    r.body = R"({"word": "direct"})";
    channel.Call(r, [&](absl::StatusOr<Response> a) { answer.set_value(std::move(a)); });
    EXPECT_EQ(got.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    return got.get();
  };
  auto right = direct(lumen::internal::CurrentRuntime()->ClusterToken());
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_NE(right->body.find("DIRECT"), std::string::npos) << right->body;
  auto wrong = direct("not-the-token");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnavailable) << wrong.status();
  auto metrics = GetPath("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("lumen_serve_requests_total{app=\"ocr\",code=\"200\","
                               "deployment=\"Pipeline\",protocol=\"http\"}"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("lumen_serve_request_latency_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics->body.find("lumen_serve_replicas{app=\"ocr\",deployment=\"Detector\"} 2"),
            std::string::npos);
}

TEST_F(ServeTest, TheGrpcIngressPredictsAndAnswersHealthChecks) {
  Deploy(R"(
  - name: ocr
    route_prefix: /ocr
    code: $APP
    ingress: Pipeline
    deployments:
      - {name: Pipeline, resources: {CPU: 0.1}}
      - {name: Detector, resources: {CPU: 0.1}}
      - {name: Recognize, resources: {CPU: 0.1}, expose: true}
)");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = proto::ServePredict::NewStub(channel);
  auto predict = [&](proto::PredictRequest req, proto::PredictReply* reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->Predict(&ctx, req, reply);
  };
  proto::PredictRequest by_name;
  by_name.set_application("ocr");
  by_name.set_body(R"({"image": "grpc works"})");
  proto::PredictReply reply;
  grpc::Status s = predict(by_name, &reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.status(), 200);
  EXPECT_EQ(Json::parse(reply.body())["text"], "GRPC WORKS");
  proto::PredictRequest by_route;
  by_route.set_route("/ocr/stream");
  by_route.set_body(R"({"image": "two words"})");
  ASSERT_TRUE(predict(by_route, &reply).ok());
  ASSERT_EQ(reply.chunks_size(), 2);
  EXPECT_EQ(reply.chunks(1), "WORDS\n");
  proto::PredictRequest one_deployment;
  one_deployment.set_application("ocr");
  one_deployment.set_deployment("Recognize");
  one_deployment.set_body(R"({"word": "direct"})");
  ASSERT_TRUE(predict(one_deployment, &reply).ok());
  EXPECT_EQ(Json::parse(reply.body())["text"], "DIRECT");
  // Only the ingress and exposed deployments answer outsiders.
  proto::PredictRequest hidden;
  hidden.set_application("ocr");
  hidden.set_deployment("Detector");
  hidden.set_body(R"({"image": "x"})");
  s = predict(hidden, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("expose: true"), std::string::npos) << s.error_message();
  proto::PredictRequest unknown;
  unknown.set_application("nope");
  s = predict(unknown, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("nope"), std::string::npos);

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hres;
  ASSERT_TRUE(health->Check(&ctx, hreq, &hres).ok());
  EXPECT_EQ(hres.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  auto metrics = GetPath("/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("lumen_serve_requests_total{app=\"ocr\",code=\"200\","
                               "deployment=\"Recognize\",protocol=\"grpc\"} 1"),
            std::string::npos)
      << metrics->body;
}

TEST_F(ServeTest, BadRequestsGetClearAnswersAndNothingBreaks) {
  Deploy(EchoApp() + R"(
  - name: ocr
    route_prefix: /ocr
    code: $APP
    ingress: Detector
    deployments:
      - {name: Detector, resources: {CPU: 0.1}}
)");
  auto thrown = GetPath("/echo/fail");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->status, 500);
  EXPECT_NE(thrown->body.find("asked to fail"), std::string::npos) << thrown->body;
  auto bad_json = Post("/ocr", "{not json");
  ASSERT_TRUE(bad_json.ok());
  EXPECT_EQ(bad_json->status, 400);
  // Bytes that are not HTTP.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(http_port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string junk = "THIS IS NOT HTTP\r\n\r\n";
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  char buf[512] = {};
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf).rfind("HTTP/1.1 400", 0), 0u) << buf;
  auto after = Post("/echo", "still here");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->body, "still here") << "the proxy kept serving";
}

// No node has what the deployment needs: requests get 503 at once, naming
// the resources, instead of waiting for their timeout; other apps serve on.
TEST_F(ServeTest, AnUnplaceableDeploymentAnswers503AtOnceNamingTheResources) {
  Deploy(EchoApp());
  ASSERT_TRUE(DeployNoWait("applications:\n" + EchoApp() +
                           "  - name: big\n    route_prefix: /big\n    code: $APP\n"
                           "    deployments: [{name: Echo, resources: {CPU: 64}, "
                           "request_timeout_s: 60}]\n")
                  .ok());
  absl::StatusOr<Response> r;
  ASSERT_TRUE(WaitUntil(
      [&] {
        r = Post("/big", "x");
        return r.ok() && r->status == 503 && r->body.find("CPU") != std::string::npos;
      },
      30'000))
      << (r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString());
  auto start = std::chrono::steady_clock::now();
  r = Post("/big", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
      << "answered at once, not at the 60 s timeout";
  auto echo = Post("/echo", "still");
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->body, "still");
}

TEST_F(ServeTest, FullQueuesAnswer503AndSlowRequests504) {
  Deploy(EchoApp(", max_ongoing_requests: 1, max_queued_requests: 1, request_timeout_s: 1.5"));
  std::vector<std::thread> threads;
  std::vector<int> codes(3, 0);
  std::map<int, std::string> retry_after;
  std::mutex mu;
  auto send = [&](int i, int sleep_ms) {
    threads.emplace_back([&, i, sleep_ms] {
      auto r = Post("/echo?sleep_ms=" + std::to_string(sleep_ms), "x");
      std::lock_guard<std::mutex> lock(mu);
      codes[i] = r.ok() ? r->status : -1;
      if (r.ok()) retry_after[r->status] = r->headers["retry-after"];
    });
  };
  send(0, 1000);  // runs
  ASSERT_TRUE(WaitUntil([&] { return Gauge("lumen_serve_ongoing_requests") == 1; }));
  send(1, 3000);  // waits in the queue
  ASSERT_TRUE(WaitUntil([&] { return Gauge("lumen_serve_queued_requests") == 1; }));
  send(2, 0);  // finds the queue full
  for (auto& t : threads) t.join();
  std::multiset<int> got(codes.begin(), codes.end());
  EXPECT_EQ(got.count(200), 1u) << codes[0] << " " << codes[1] << " " << codes[2];
  EXPECT_EQ(got.count(503), 1u) << "the queue holds one";
  EXPECT_EQ(got.count(504), 1u) << "the queued one (3 s of work) passes its 1.5 s timeout";
  EXPECT_EQ(retry_after[503], "1");
}

TEST_F(ServeTest, AsyncAnswersAreFetchedLater) {
  Deploy(EchoApp(", router: queue"));
  auto accepted = Post("/echo?sleep_ms=300", "later", {{"prefer", "respond-async"}});
  ASSERT_TRUE(accepted.ok());
  ASSERT_EQ(accepted->status, 202) << accepted->body;
  std::string url = Json::parse(accepted->body)["status_url"];
  auto pending = GetPath(url);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->status, 202) << "still running";
  ASSERT_TRUE(WaitUntil([&] {
    auto r = GetPath(url);
    return r.ok() && r->status == 200 && r->body == "later";
  }));
  auto unknown = GetPath("/-/results/nope");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
}

TEST_F(ServeTest, EveryRouterSpreadsWorkAndHashKeepsKeysOnOneReplica) {
  for (std::string router : {"pow2", "swrr", "queue", "rr", "hash"}) {
    Deploy(EchoApp(", num_replicas: 2, router: " + router));
    std::set<int> pids;
    if (router == "hash") {
      for (int i = 0; i < 40; ++i) {
        pids.insert(PidAt("/echo/pid", {{"x-lumen-shard-key", "k" + std::to_string(i)}}));
      }
    } else {  // rounds of concurrent requests: every policy uses both replicas
      for (int round = 0; round < 3; ++round) {
        std::vector<std::thread> ts;
        std::mutex mu;
        for (int i = 0; i < 6; ++i) {
          ts.emplace_back([&] {
            int pid = PidAt("/echo/pid?sleep_ms=100");
            std::lock_guard<std::mutex> lock(mu);
            pids.insert(pid);
          });
        }
        for (auto& t : ts) t.join();
      }
    }
    EXPECT_EQ(pids.count(-1), 0u) << router;
    EXPECT_EQ(pids.size(), 2u) << router << " did not use both replicas";
    if (router == "hash") {
      int first = PidAt("/echo/pid", {{"x-lumen-shard-key", "user-7"}});
      for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(PidAt("/echo/pid", {{"x-lumen-shard-key", "user-7"}}), first);
      }
    }
  }
}

TEST_F(ServeTest, BatchingHandsRequestsThatArriveTogetherToCallBatch) {
  Deploy(R"(
  - name: batch
    route_prefix: /batch
    code: $APP
    deployments:
      - {name: Batcher, resources: {CPU: 0.1}, max_ongoing_requests: 8,
         batching: {max_batch_size: 4, batch_wait_timeout_s: 1}}
)");
  std::vector<std::thread> ts;
  std::mutex mu;
  std::map<std::string, int> sizes;  // body -> its batch's size
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      auto r = Post("/batch", "r" + std::to_string(i));
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok() && r->status == 200) {
        Json j = Json::parse(r->body);
        sizes[j["body"]] = j["batch_size"];
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(sizes.size(), 4u) << "every request answered with its own body";
  for (const auto& [body, size] : sizes) EXPECT_EQ(size, 4) << body << ": four arrived together";
  auto alone = Post("/batch", "solo");  // nobody to wait for: sent after the wait
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(Json::parse(alone->body)["batch_size"], 1);

  // A class without CallBatch cannot batch: the deployment says so.
  ASSERT_TRUE(DeployNoWait("applications:\n  - name: nobatch\n    code: $APP"
                           "\n    deployments:\n      - {name: Echo, resources: {CPU: 0.1}, "
                           "batching: {max_batch_size: 2}}\n")
                  .ok());
  ASSERT_TRUE(WaitUntil([&] {
    Json d = Status()["applications"]["nobatch"]["deployments"]["Echo"];
    return d.is_object() && d.value("message", "").find("CallBatch") != std::string::npos;
  })) << serve::DumpJson(Status(), 2);
}

TEST_F(ServeTest, UserConfigReconfiguresWithoutRestarting) {
  std::string base = R"(
  - name: ocr
    route_prefix: /ocr
    code: $APP
    ingress: Detector
    deployments:
      - {name: Detector, resources: {CPU: 0.1}, user_config: {threshold: THRESHOLD}}
)";
  auto with = [&](const std::string& t) {
    std::string y = base;
    y.replace(y.find("THRESHOLD"), 9, t);
    return y;
  };
  Deploy(with("0.5"));
  auto id_before = Status()["applications"]["ocr"]["deployments"]["Detector"]["replicas"][0]["id"];
  auto r = Post("/ocr", R"({"image": "a bb"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Json::parse(r->body)["boxes"].size(), 1u);
  Deploy(with("0.1"));
  ASSERT_TRUE(WaitUntil([&] {
    auto again = Post("/ocr", R"({"image": "a bb"})");
    return again.ok() && Json::parse(again->body)["boxes"].size() == 2u;
  }));
  EXPECT_EQ(Status()["applications"]["ocr"]["deployments"]["Detector"]["replicas"][0]["id"],
            id_before)
      << "same replica";
}

TEST_F(ServeTest, RollingUpdateUnderLoadFailsNoRequest) {
  auto with = [](const std::string& delay_ms) {
    return EchoApp(", num_replicas: 2, init_args: {delay_ms: " + delay_ms + "}");
  };
  Deploy(with("0"));
  std::set<int> before;
  for (int i = 0; i < 20; ++i) before.insert(PidAt("/echo/pid"));
  Load load;
  StartLoad(&load, "/echo", 4);
  ASSERT_TRUE(WaitUntil([&] { return load.ok > 50; }));
  Deploy(with("1"));  // a new version: replicas roll one by one
  // Under load until every answer comes from a new replica (the deploy's
  // RUNNING may be read before the roll began), then a while longer.
  std::set<int> after;
  int probes_failed = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        after.clear();
        for (int i = 0; i < 20; ++i) after.insert(PidAt("/echo/pid"));
        probes_failed += static_cast<int>(after.count(-1));
        for (int pid : after) {
          if (before.count(pid)) return false;
        }
        return after.count(-1) == 0;
      },
      60'000))
      << "every replica should be replaced";
  EXPECT_EQ(probes_failed, 0);
  int at_switch = load.ok;
  ASSERT_TRUE(WaitUntil([&] { return load.ok > at_switch + 50; }));
  load.Stop();
  EXPECT_EQ(load.failed, 0) << load.last_error;
}

TEST_F(ServeTest, AKilledReplicaIsReplacedAndNoRequestFails) {
  Deploy(EchoApp(", num_replicas: 2, health_check_period_s: 0.2"));
  std::set<int> pids;
  ASSERT_TRUE(WaitUntil([&] {
    pids.insert(PidAt("/echo/pid"));
    return pids.size() == 2;
  }));
  Load load;
  StartLoad(&load, "/echo", 4);
  ASSERT_TRUE(WaitUntil([&] { return load.ok > 50; }));
  int victim = *pids.begin();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  int at_kill = load.ok;
  auto replaced = [&] {  // a third replica (Echo#3) runs beside the survivor
    Json s = Status();
    int fresh = 0;
    for (const auto& r : s["applications"]["echo"]["deployments"]["Echo"]["replicas"]) {
      fresh += r["state"] == "RUNNING" && r["id"] == "Echo#3";
    }
    return fresh == 1 && Running("echo", "Echo") == 2;
  };
  ASSERT_TRUE(WaitUntil([&] { return replaced() && load.ok > at_kill + 100; }, 60'000))
      << serve::DumpJson(Status(), 2);
  load.Stop();
  EXPECT_EQ(load.failed, 0) << load.last_error;
  std::set<int> now;
  ASSERT_TRUE(WaitUntil([&] {  // proxies route to the new one once its table reaches them
    now.insert(PidAt("/echo/pid"));
    return now.size() >= 2;
  }));
  EXPECT_EQ(now.count(victim), 0u);
  EXPECT_EQ(now.size(), 2u) << "a new replica took its place";
}

TEST_F(ServeTest, AutoscalesUpDownAndFromZero) {
  Deploy(
      EchoApp(", max_ongoing_requests: 2, autoscaling: {min_replicas: 0, max_replicas: 3, "
              "target_ongoing_requests: 1, upscale_delay_s: 0.2, downscale_delay_s: 1}"));
  EXPECT_EQ(Running("echo", "Echo"), 0) << "min_replicas 0: none until a request comes";
  auto first = Post("/echo", "woke");  // waits while the first replica starts
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "woke");
  Load load;
  int port = http_port_;
  for (int i = 0; i < 5; ++i) {
    load.threads.emplace_back([&load, port] {
      while (!load.stop) {
        auto r = HttpCall("127.0.0.1", port, "POST", "/echo?sleep_ms=100", "x");
        (r.ok() && r->status == 200 ? load.ok : load.failed)++;
      }
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return Running("echo", "Echo") >= 3; }, 30'000))
      << serve::DumpJson(Status(), 2);
  load.Stop();
  EXPECT_EQ(load.failed, 0);
  ASSERT_TRUE(WaitUntil([&] { return Running("echo", "Echo") == 0; }, 30'000))
      << "idle: back down to min_replicas 0\n"
      << serve::DumpJson(Status(), 2);
}

TEST_F(ServeTest, TheAdminApiRefusesABadFileAndKeepsTheRunningApps) {
  Deploy(EchoApp());
  std::string bad =
      "applications:\n  - name: echo\n    deployments:\n      - name: Echo\n        num_replicas: "
      "many\n";
  auto r = admin_->Call("PUT", "/api/serve/applications",
                        serve::DumpJson({{"config", bad}, {"file", "bad.yaml"}}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("bad.yaml:5"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("num_replicas"), std::string::npos) << r.status();
  auto still = Post("/echo", "up");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->body, "up");
  // Through the CLI as well.
  std::string out;
  std::string cmd = std::string(LUMEN_CLI_PATH) + " serve status --address " +
                    cluster_->gcs_address() + " --token " + cluster_->token();
  ASSERT_EQ(testing::RunCommand(cmd, &out), 0) << out;
  EXPECT_NE(out.find("echo  RUNNING  /echo"), std::string::npos) << out;
  EXPECT_NE(out.find("proxy  node"), std::string::npos) << out;
  // Or straight to the admin API, with the token.
  std::string direct;
  cmd = std::string(LUMEN_CLI_PATH) + " serve status --admin " + admin_address_ + " --token " +
        cluster_->token();
  ASSERT_EQ(testing::RunCommand(cmd, &direct), 0) << direct;
  EXPECT_NE(direct.find("echo  RUNNING  /echo"), std::string::npos) << direct;
  std::string wrong;
  EXPECT_EQ(
      testing::RunCommand(std::string(LUMEN_CLI_PATH) + " serve status --admin nonsense", &wrong),
      1);
  EXPECT_NE(wrong.find("expected HOST:PORT"), std::string::npos) << wrong;
}

TEST_F(ServeTest, TheAdminApiAnswersOnlyTheTokenAndALoopbackHost) {
  int port = std::stoi(admin_address_.substr(admin_address_.rfind(':') + 1));
  auto call = [&](std::map<std::string, std::string> headers) {
    return HttpCall("127.0.0.1", port, "GET", "/api/serve/applications", "", headers);
  };
  auto none = call({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->status, 401) << none->body;
  auto wrong = call({{"authorization", "Bearer not-the-token"}});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  auto right = call({{"authorization", "Bearer " + cluster_->token()}});
  ASSERT_TRUE(right.ok());
  EXPECT_EQ(right->status, 200) << right->body;
  // A page elsewhere that rebinds its name to 127.0.0.1 sends its own Host.
  auto rebound = call({{"authorization", "Bearer " + cluster_->token()},
                       {"host", "evil.example:" + std::to_string(port)}});
  ASSERT_TRUE(rebound.ok());
  EXPECT_EQ(rebound->status, 421) << rebound->body;
  // Code bytes must match the digest they are stored under.
  auto forged = admin_->Call("PUT", "/api/serve/code/" + std::string(64, 'a'), "not that");
  EXPECT_EQ(forged.status().code(), absl::StatusCode::kInvalidArgument) << forged.status();
  // A deploy naming code that was never uploaded is refused.
  auto missing = admin_->Call(
      "PUT", "/api/serve/applications",
      serve::DumpJson(
          {{"config",
            "applications:\n  - name: x\n    code: /tmp/libx.so\n"
            "    deployments: [{name: Echo}]\n"},
           {"code", {{"x", {{{"name", "libx.so"}, {"digest", std::string(64, 'b')}}}}}}}));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument) << missing.status();
  EXPECT_NE(missing.status().message().find("was not uploaded"), std::string::npos)
      << missing.status();
}

TEST_F(ServeTest, KillingTheControllerOrTheManagerFailsNoRequest) {
  Deploy(EchoApp(", num_replicas: 2"));
  std::set<int> before;
  for (int i = 0; i < 20; ++i) before.insert(PidAt("/echo/pid"));
  Load load;
  StartLoad(&load, "/echo", 4);
  ASSERT_TRUE(WaitUntil([&] { return load.ok > 50; }));
  for (const char* name : {"controller/echo", "manager"}) {
    int at_kill = load.ok;
    std::vector<internal::ActorStateInfo> found;
    std::promise<void> listed;
    internal::CurrentRuntime()->ListActorsAsync(
        "serve", name, [&](absl::StatusOr<std::vector<internal::ActorStateInfo>> r) {
          if (r.ok()) found = *r;
          listed.set_value();
        });
    listed.get_future().wait();
    ASSERT_FALSE(found.empty()) << name;
    ASSERT_TRUE(Kill(ActorHandleBase(found[0].id), /*no_restart=*/false).ok()) << name;
    // The app keeps serving, the actor comes back and the status answers.
    ASSERT_TRUE(WaitUntil(
        [&] {
          Json s = Status();
          return load.ok > at_kill + 100 && s.contains("applications") &&
                 s["applications"].value("echo", Json::object()).value("status", "") == "RUNNING";
        },
        60'000))
        << name << ": " << serve::DumpJson(Status(), 2);
  }
  load.Stop();
  EXPECT_EQ(load.failed, 0) << load.last_error;
  std::set<int> after;
  for (int i = 0; i < 20; ++i) after.insert(PidAt("/echo/pid"));
  EXPECT_EQ(after, before) << "the restarted controller adopted the replicas";
}

}  // namespace
}  // namespace lumen
