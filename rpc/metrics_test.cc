// rpc/metrics.h: the /metrics exporter and its token, families read on a
// loop, the wire form workers send, merging by name, and the RPC server's
// own figures.
#include "rpc/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"
#include "rpc/gcs_client.h"
#include "rpc/gcs_service.h"
#include "rpc/rpc.h"
#include "rpc/server.h"

namespace lumen::rpc {
namespace {

// One HTTP/1.0 GET on loopback: the status line's code and the body.
std::pair<int, std::string> HttpGet(int port, const std::string& path,
                                    const std::string& authorization = "") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return {-1, ""};
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  if (!authorization.empty()) req += "Authorization: " + authorization + "\r\n";
  req += "\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  ::close(fd);
  if (response.size() < 12) return {-1, response};
  size_t body = response.find("\r\n\r\n");
  return {std::stoi(response.substr(9, 3)),
          body == std::string::npos ? "" : response.substr(body + 4)};
}

TEST(MetricsExporterTest, AScrapeNeedsTheTokenAndReadsOnTheLoop) {
  EventLoop loop("metrics_test");
  loop.Start();
  auto exporter = MetricsExporter::Start({.host = "127.0.0.1", .port = 0, .token = "secret"});
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  ASSERT_GT((*exporter)->port(), 0);
  std::atomic<bool> on_loop{false};
  auto source = std::make_shared<LoopCollectable>(&loop, [&] {
    on_loop = loop.IsCurrentThread();
    auto f = GaugeFamily("lumen_test_things", "Things");
    AddSample(&f, {{"kind", "a"}}, 7);
    return std::vector<prometheus::MetricFamily>{f};
  });
  (*exporter)->Add(source);
  const int port = (*exporter)->port();

  auto [code, body] = HttpGet(port, "/metrics");
  EXPECT_EQ(code, 401);
  EXPECT_EQ(body.find("lumen_test_things"), std::string::npos);
  EXPECT_NE(body.find("Bearer"), std::string::npos) << body;
  EXPECT_EQ(HttpGet(port, "/metrics", "Bearer secreT").first, 401);
  EXPECT_EQ(HttpGet(port, "/metrics", "Basic " + absl::Base64Escape("u:wrong")).first, 401);
  EXPECT_EQ(HttpGet(port, "/metrics", "Basic !!!").first, 401);

  std::tie(code, body) = HttpGet(port, "/metrics", "Bearer secret");
  EXPECT_EQ(code, 200);
  EXPECT_NE(body.find("lumen_test_things{kind=\"a\"} 7"), std::string::npos) << body;
  EXPECT_TRUE(on_loop);
  // Prometheus's basic_auth with the token as the password works too.
  std::tie(code, body) =
      HttpGet(port, "/metrics", "Basic " + absl::Base64Escape("prometheus:secret"));
  EXPECT_EQ(code, 200);
  EXPECT_NE(body.find("lumen_test_things"), std::string::npos);

  // Closed (the component stops): the scrape gets nothing from it.
  source->Close();
  std::tie(code, body) = HttpGet(port, "/metrics", "Bearer secret");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body.find("lumen_test_things"), std::string::npos);
  loop.Stop();
}

TEST(MetricsExporterTest, APortInUseIsAClearError) {
  auto first = MetricsExporter::Start({.token = "t"});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsExporter::Start({.port = (*first)->port(), .token = "t"});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:" +
                                           std::to_string((*first)->port())),
            std::string::npos)
      << second.status();
}

TEST(MetricsWireTest, FamiliesSurviveTheTripAndMergeByName) {
  prometheus::Registry registry;
  prometheus::BuildCounter()
      .Name("calls_total")
      .Help("Calls")
      .Register(registry)
      .Add({{"r", "x"}})
      .Increment(3);
  prometheus::BuildGauge().Name("depth").Help("Depth").Register(registry).Add({}).Set(-2.5);
  prometheus::BuildHistogram()
      .Name("size_bytes")
      .Help("Sizes")
      .Register(registry)
      .Add({{"r", "x"}}, prometheus::Histogram::BucketBoundaries{1, 10})
      .Observe(5);
  const std::vector<prometheus::MetricFamily> families = registry.Collect();
  proto::ReportMetricsRequest wire;
  ToProto(families, wire.mutable_families());
  std::vector<prometheus::MetricFamily> back = FromProto(wire.families());
  prometheus::TextSerializer text;
  EXPECT_EQ(text.Serialize(back), text.Serialize(families));

  // Two workers' families and a third with the same name but another type.
  std::vector<prometheus::MetricFamily> merged;
  MergeFamilies(&merged, back, {{"worker_id", "w1"}});
  MergeFamilies(&merged, back, {{"worker_id", "w2"}});
  auto other = GaugeFamily("calls_total", "Not a counter");
  AddSample(&other, {}, 1);
  MergeFamilies(&merged, {other}, {{"worker_id", "w3"}});
  ASSERT_EQ(merged.size(), 3u);
  std::string out = text.Serialize(merged);
  EXPECT_NE(out.find("calls_total{r=\"x\",worker_id=\"w1\"} 3"), std::string::npos) << out;
  EXPECT_NE(out.find("calls_total{r=\"x\",worker_id=\"w2\"} 3"), std::string::npos) << out;
  EXPECT_EQ(out.find("w3"), std::string::npos) << out;
  EXPECT_NE(out.find("size_bytes_bucket{r=\"x\",worker_id=\"w2\",le=\"10\"} 1"), std::string::npos)
      << out;
  // One TYPE line per name, as Prometheus wants.
  size_t types = 0;
  for (size_t at = 0; (at = out.find("# TYPE calls_total ", at)) != std::string::npos; ++at) {
    types++;
  }
  EXPECT_EQ(types, 1u);
}

// Echoes KvGet; refuses puts.
class EchoKv : public GcsKvHandler {
 public:
  LUMEN_HANDLER_IMPL(KvGet) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvExists) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvPut) { send(absl::InvalidArgumentError("no puts here")); }
  LUMEN_HANDLER_IMPL(KvDel) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvKeys) { send(absl::OkStatus()); }
};

double Sample(const std::string& text, const std::string& line_prefix) {
  size_t at = text.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return -1;
  size_t value = at + 1 + line_prefix.size() + 1;
  return std::stod(text.substr(value, text.find('\n', value) - value));
}

TEST(RpcServerMetricsTest, CallsAreTimedAndErrorsCountedByMethodAndCode) {
  EventLoop loop("rpc_metrics_server");
  loop.Start();
  EchoKv kv;
  GrpcServer server("metrics_test_server", ServerOptions{"127.0.0.1", 0, "secret"});
  server.AddService(MakeGcsKvService(server.MakeContext(&loop), &kv));
  ASSERT_TRUE(server.Start().ok());
  GcsClient client(JoinHostPort("127.0.0.1", server.port()), "secret", nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(CallSync<proto::KvGetReply>([&](auto cb) {
                  client.KvGet(proto::KvGetRequest(), cb);
                }).ok());
  }
  (void)CallSync<proto::KvPutReply>([&](auto cb) { client.KvPut(proto::KvPutRequest(), cb); });
  GcsClient stranger(JoinHostPort("127.0.0.1", server.port()), "wrong", nullptr);
  (void)CallSync<proto::KvGetReply>([&](auto cb) { stranger.KvGet(proto::KvGetRequest(), cb); });

  std::string text = prometheus::TextSerializer().Serialize(ProcessRegistry().Collect());
  const std::string get =
      "lumen_rpc_server_latency_seconds_count{method=\"GcsKvService.KvGet\",server=\""
      "metrics_test_server\"}";
  EXPECT_EQ(Sample(text, get), 4) << text;  // the stranger's too
  EXPECT_EQ(Sample(text,
                   "lumen_rpc_server_errors_total{code=\"INVALID_ARGUMENT\",method=\"GcsKvService."
                   "KvPut\",server=\"metrics_test_server\"}"),
            1)
      << text;
  EXPECT_EQ(Sample(text,
                   "lumen_rpc_server_errors_total{code=\"UNAUTHENTICATED\",method=\"GcsKvService."
                   "KvGet\",server=\"metrics_test_server\"}"),
            1)
      << text;
  loop.Stop();
  server.Shutdown();
}

}  // namespace
}  // namespace lumen::rpc
