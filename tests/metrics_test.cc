// Metrics end to end: Debian's real Prometheus server scrapes a three-node
// cluster (GCS, node managers, serve proxies, found by `lumen metrics
// targets`) with the cluster token, and its HTTP API has series from every
// component, user metrics from tasks included.
#include <fstream>

#include "nlohmann/json.hpp"
#include "serve_fixture.h"
#include "test_tasks.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using Json = nlohmann::json;

class MetricsTest : public ServeFixture {
 protected:
  static void SetUpTestSuite() {
    ServeFixture::SetUpTestSuite();
    if (cluster_ == nullptr) return;
    absl::Status added = cluster_->AddNode({{{"CPU", 2}}});
    ASSERT_TRUE(added.ok()) << added;
  }

  // `lumen metrics targets` as JSON (file_sd_configs), or null.
  static Json Targets() {
    std::string out;
    int rc = testing::RunCommand(std::string("LUMEN_TOKEN=") + cluster_->token() + " " +
                                     LUMEN_CLI_PATH + " metrics targets --address " +
                                     cluster_->gcs_address() + " 2>/dev/null",
                                 &out);
    if (rc != 0) return nullptr;
    return Json::parse(out, nullptr, false);
  }
  static int CountComponent(const Json& targets, const std::string& component) {
    int n = 0;
    for (const auto& g : targets) n += g["labels"]["lumen_component"] == component;
    return n;
  }
};

// An instant query against Prometheus's HTTP API: the result vector.
Json Query(int port, const std::string& promql) {
  std::string encoded;
  for (unsigned char c : promql) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      encoded += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      encoded += buf;
    }
  }
  auto r = serve::HttpCall("127.0.0.1", port, "GET", "/api/v1/query?query=" + encoded);
  if (!r.ok() || r->status != 200) return Json::array();
  Json j = Json::parse(r->body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success") return Json::array();
  return j["data"]["result"];
}

double Value(const Json& sample) { return std::stod(sample["value"][1].get<std::string>()); }

TEST_F(MetricsTest, PrometheusScrapesEveryComponentWithTheToken) {
  // Work for every figure: a serve app with traffic, tasks with user metrics.
  Deploy(EchoApp());
  for (int i = 0; i < 20; ++i) {
    auto r = Post("/echo", "x");
    ASSERT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
  }
  std::set<std::string> nodes_used;
  std::vector<ObjectRef<std::string>> calls;
  for (int i = 0; i < 12; ++i) calls.push_back(Task(test_tasks::CountCall).Remote("/predict"));
  for (auto& c : calls) {
    auto node = Get(c, 60'000);
    ASSERT_TRUE(node.ok()) << node.status();
    nodes_used.insert(*node);
  }

  // The endpoints: the GCS, three node managers, three proxies.
  Json targets;
  ASSERT_TRUE(WaitUntil(
      [&] {
        targets = Targets();
        return targets.is_array() && CountComponent(targets, "gcs") == 1 &&
               CountComponent(targets, "node_manager") == 3 &&
               CountComponent(targets, "serve_proxy") == 3;
      },
      60'000))
      << targets.dump(2);

  // Without the token a node manager says 401 and nothing else.
  for (const auto& g : targets) {
    if (g["labels"]["lumen_component"] == "serve_proxy") continue;
    std::string target = g["targets"][0];
    int port = std::stoi(target.substr(target.rfind(':') + 1));
    auto r = serve::HttpCall("127.0.0.1", port, "GET", "/metrics");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401) << target;
    EXPECT_EQ(r->body.find("lumen_"), std::string::npos) << target;
    r = serve::HttpCall("127.0.0.1", port, "GET", "/metrics", "",
                        {{"authorization", "Bearer wrong-token"}});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401) << target;
  }

  testing::TempDir dir;
  const std::string token_file = dir.path() + "/token";
  const std::string targets_file = dir.path() + "/targets.json";
  std::ofstream(token_file) << cluster_->token();
  std::ofstream(targets_file) << targets.dump(2);
  std::ofstream(dir.path() + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: lumen\n"
      << "    authorization:\n      credentials_file: " << token_file << "\n"
      << "    file_sd_configs:\n      - files: [" << targets_file << "]\n";
  const int port = testing::FreePort();
  PosixProcessLauncher launcher;
  ProcessSpec spec;
  spec.argv = {"/usr/bin/prometheus", "--config.file=" + dir.path() + "/prometheus.yml",
               "--storage.tsdb.path=" + dir.path() + "/data",
               "--web.listen-address=127.0.0.1:" + std::to_string(port)};
  spec.stdout_path = dir.path() + "/prometheus.log";
  spec.stderr_path = spec.stdout_path;
  auto prometheus = launcher.Launch(spec);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status()
                               << " (scripts/setup.sh installs Debian's prometheus)";
  auto log = [&] {
    std::ifstream in(spec.stdout_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
  };

  // Every target up (scraped with the token, parsed by Prometheus).
  Json up;
  ASSERT_TRUE(WaitUntil(
      [&] {
        up = Query(port, "up{job=\"lumen\"}");
        if (up.size() != 7) return false;
        for (const auto& s : up) {
          if (Value(s) != 1) return false;
        }
        return true;
      },
      90'000))
      << up.dump(2) << "\n"
      << log();

  auto wait_for = [&](const std::string& promql, const std::function<bool(const Json&)>& ok) {
    Json got;
    bool held = WaitUntil(
        [&] {
          got = Query(port, promql);
          return ok(got);
        },
        60'000);
    EXPECT_TRUE(held) << promql << " -> " << got.dump(2);
  };
  // The GCS: its tables and its RPC server.
  wait_for("lumen_cluster_nodes{state=\"alive\"}",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) == 3; });
  wait_for("lumen_actors{state=\"ALIVE\"}",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) >= 4; });  // serve's
  wait_for("sum(lumen_tasks{name=~\".*CountCall.*\",state=\"FINISHED\"})",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) == 12; });
  wait_for(
      "lumen_rpc_server_latency_seconds_count{lumen_component=\"gcs\",method=\"GcsNodeService."
      "ReportNode\"}",
      [](const Json& r) { return r.size() == 1 && Value(r[0]) > 0; });
  // Every node manager: resources, store, workers.
  wait_for("lumen_node_resources_total{resource=\"CPU\"}", [](const Json& r) {
    std::set<std::string> nodes;
    for (const auto& s : r) nodes.insert(s["metric"]["node_id"].get<std::string>());
    return nodes.size() == 3;
  });
  wait_for("lumen_object_store_capacity_bytes",
           [](const Json& r) { return r.size() == 3 && Value(r[0]) > 0; });
  wait_for("lumen_node_memory_used_bytes",
           [](const Json& r) { return r.size() == 3 && Value(r[0]) > 0; });
  wait_for("sum(lumen_worker_processes)",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) > 0; });
  // Workers, through their node managers: the user's metrics, by worker.
  wait_for("sum(test_task_calls_total{route=\"/predict\"})",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) == 12; });
  wait_for("test_task_calls_total", [&](const Json& r) {
    std::set<std::string> nodes;
    for (const auto& s : r) {
      if (!s["metric"].contains("worker_id")) return false;
      nodes.insert(s["metric"]["node_id"].get<std::string>());
    }
    return !r.empty() && nodes.size() == nodes_used.size();
  });
  wait_for("sum(test_task_route_bytes_count)",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) == 12; });
  // Serve proxies.
  wait_for("sum(lumen_serve_requests_total{app=\"echo\"})",
           [](const Json& r) { return r.size() == 1 && Value(r[0]) >= 20; });
  (void)(*prometheus)->Terminate(5000);
}

}  // namespace
}  // namespace lumen
