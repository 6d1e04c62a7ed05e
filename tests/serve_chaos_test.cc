// Chaos: a two-node cluster (GCS tables in a real redis-server) serves the
// OCR application (ingress Pipeline -> Detector, Recognize; two replicas of
// each) under steady load through the head node's proxy, while one lumen
// process at a time is killed with SIGKILL: a replica, an ingress replica,
// the application's controller, a deploying CLI, the second node's node
// manager (the head has room for what ran there) and the GCS. For each it
// counts failed requests and the time until the application is whole again,
// and prints the table docs/fault_tolerance.md shows. Every kill but the
// GCS's must fail no request.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iomanip>
#include <sstream>

#include "serve_fixture.h"

namespace lumen {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kApp[] = R"(applications:
  - name: ocr
    route_prefix: /ocr
    code: $APP
    ingress: Pipeline
    deployments:
      - {name: Pipeline, num_replicas: 2, resources: {CPU: 0.1}, health_check_period_s: 0.2}
      - {name: Detector, num_replicas: 2, resources: {CPU: 0.1}, health_check_period_s: 0.2}
      - {name: Recognize, num_replicas: 2, resources: {CPU: 0.1}, health_check_period_s: 0.2}
)";

struct Row {
  std::string victim;
  int failed = 0;
  int ok = 0;
  double recovery_s = 0;
  std::string note;
};

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Ready()) << "redis-server did not start";
    worker::LocalClusterOptions o;
    o.nodes = {{{{"CPU", 4}}}, {{{"CPU", 4}}}};
    o.gcs_storage = redis_.url();
    o.node_timeout_ms = 1000;
    o.heartbeat_period_ms = 100;
    auto c = testing::StartAndConnect(o, serve::ServeLibraryPaths());
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    auto serve = serve::EnsureServeRunning({.http_port = 0});
    ASSERT_TRUE(serve.ok()) << serve.status();
    admin_ = std::make_unique<serve::AdminClient>(serve->admin,
                                                  internal::CurrentRuntime()->ClusterToken());
    std::string head = GetRuntimeContext().node.Hex();
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = admin_->Status();
          if (!s.ok()) return false;
          for (const auto& p : (*s)["proxies"]) {
            if (p["node"] == head && p["state"] == "RUNNING") {
              std::string http = p["http"];
              http_port_ = std::stoi(http.substr(http.rfind(':') + 1));
            }
          }
          return http_port_ > 0;
        },
        60'000));
    std::string config = kApp;
    config.replace(config.find("$APP"), 4, LUMEN_OCR_APP);
    config_path_ = dir_.path() + "/ocr.yaml";
    std::ofstream(config_path_) << config;
    auto r = admin_->DeployText(config, "ocr.yaml", "/");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(admin_->WaitRunning(60'000).ok());
  }
  void TearDown() override {
    if (admin_) (void)serve::StopServe(internal::CurrentRuntime()->ClusterToken(), 10'000);
    Shutdown();
    cluster_.reset();
  }

  Json Status() {
    auto s = admin_->Status();
    return s.ok() ? *s : Json::object();
  }
  // Replica pids of a deployment, RUNNING ones only.
  std::set<int> Pids(const std::string& deployment) {
    std::set<int> pids;
    Json s = Status();
    for (const auto& r : s["applications"]["ocr"]["deployments"][deployment]["replicas"]) {
      if (r["state"] == "RUNNING") pids.insert(r.value("pid", 0));
    }
    return pids;
  }
  // Whole: RUNNING, two running replicas of each deployment.
  bool Whole() {
    Json s = Status();
    const Json& app = s["applications"]["ocr"];
    if (app.value("status", "") != "RUNNING") return false;
    for (const char* d : {"Pipeline", "Detector", "Recognize"}) {
      int running = 0;
      for (const auto& r : app["deployments"][d]["replicas"]) running += r["state"] == "RUNNING";
      if (running != 2) return false;
    }
    return true;
  }

  // Runs `kill`, then waits until `recovered` holds and 100 more requests
  // succeeded; the row counts what failed meanwhile.
  Row Measure(const std::string& victim, const std::function<void()>& kill,
              const std::function<bool()>& recovered) {
    Row row{victim};
    Load load(http_port_);
    EXPECT_TRUE(WaitUntil([&] { return load.ok > 50; })) << victim << ": no traffic before";
    int ok_before = load.ok, failed_before = load.failed;
    auto start = Clock::now();
    kill();
    bool back = WaitUntil(recovered, 120'000);
    row.recovery_s = std::chrono::duration<double>(Clock::now() - start).count();
    int at = load.ok;
    EXPECT_TRUE(WaitUntil([&] { return load.ok > at + 100; }, 60'000)) << victim;
    load.Stop();
    EXPECT_TRUE(back) << victim << " did not recover: " << serve::DumpJson(Status(), 2);
    row.failed = load.failed - failed_before;
    row.ok = load.ok - ok_before;
    row.note = load.last_error;
    rows_.push_back(row);
    return row;
  }

  // Steady load: two threads of OCR requests checked for the right text.
  struct Load {
    explicit Load(int port) {
      for (int i = 0; i < 2; ++i) {
        threads.emplace_back([this, port] {
          while (!stop) {
            auto r = HttpCall("127.0.0.1", port, "POST", "/ocr", R"({"image": "hello lumen"})");
            if (r.ok() && r->status == 200 && r->body.find("HELLO LUMEN") != std::string::npos) {
              ok++;
            } else {
              failed++;
              std::lock_guard<std::mutex> lock(mu);
              last_error = r.ok() ? std::to_string(r->status) + " " + r->body
                                  : std::string(r.status().message());
            }
          }
        });
      }
    }
    ~Load() { Stop(); }
    void Stop() {
      stop = true;
      for (auto& t : threads) t.join();
      threads.clear();
    }
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::mutex mu;
    std::string last_error;
    std::vector<std::thread> threads;
  };

  testing::RedisServer redis_;
  testing::TempDir dir_;
  std::unique_ptr<worker::LocalCluster> cluster_;
  std::unique_ptr<serve::AdminClient> admin_;
  int http_port_ = 0;
  std::string config_path_;
  std::vector<Row> rows_;
};

TEST_F(ChaosTest, KillEachProcessInTurnUnderLoad) {
  auto replaced = [&](const std::string& deployment, int victim) {
    return [this, deployment, victim] {
      std::set<int> pids = Pids(deployment);
      return Whole() && pids.count(victim) == 0;
    };
  };

  int recognize = *Pids("Recognize").begin();
  Measure(
      "a replica (Recognize)", [&] { ::kill(recognize, SIGKILL); },
      replaced("Recognize", recognize));

  int ingress = *Pids("Pipeline").begin();
  Measure(
      "an ingress replica (Pipeline)", [&] { ::kill(ingress, SIGKILL); },
      replaced("Pipeline", ingress));

  int controller = Status()["applications"]["ocr"].value("controller_pid", 0);
  ASSERT_GT(controller, 0);
  Measure(
      "the application's controller", [&] { ::kill(controller, SIGKILL); },
      [&] {
        Json s = Status();
        int now = s["applications"]["ocr"].value("controller_pid", 0);
        return now > 0 && now != controller && Whole();
      });

  // A `lumen serve deploy` of the same file, killed as it runs.
  pid_t cli = 0;
  Measure(
      "the deploying CLI",
      [&] {
        cli = ::fork();
        if (cli == 0) {
          std::string token = internal::CurrentRuntime()->ClusterToken();
          ::setenv("LUMEN_TOKEN", token.c_str(), 1);
          ::execl(LUMEN_CLI_PATH, LUMEN_CLI_PATH, "serve", "deploy", config_path_.c_str(),
                  "--address", cluster_->gcs_address().c_str(), static_cast<char*>(nullptr));
          ::_exit(127);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // mid-deploy, on purpose
        ::kill(cli, SIGKILL);
        ::waitpid(cli, nullptr, 0);
      },
      [&] { return Whole(); });

  // The second node's node manager: its replicas (and any serve actor
  // there) are lost; the head has room for all of them.
  Measure(
      "a node manager (the other node's)", [&] { ::kill(cluster_->node_pid(1), SIGKILL); },
      [&] {
        auto nodes = Nodes(/*ask_each_node=*/false);
        if (!nodes.ok()) return false;
        int alive = 0;
        for (const auto& n : *nodes) alive += n.alive;
        return alive == 1 && Whole();
      });

  // The GCS (Redis storage): killed, then started again as an operator's
  // supervisor would.
  Measure(
      "the GCS (Redis storage), restarted",
      [&] {
        cluster_->KillGcs();
        ASSERT_TRUE(cluster_->RestartGcs().ok());
      },
      [&] { return Whole(); });

  std::ostringstream table;
  table << "| killed (SIGKILL) | requests ok | failed | whole again after |\n"
        << "|---|---:|---:|---:|\n";
  for (const auto& r : rows_) {
    table << "| " << r.victim << " | " << r.ok << " | " << r.failed << " | " << std::fixed
          << std::setprecision(1) << r.recovery_s << " s |\n";
  }
  std::cout << "\n" << table.str() << std::endl;
  for (const auto& r : rows_) {
    if (r.victim.rfind("the GCS", 0) == 0) continue;
    EXPECT_EQ(r.failed, 0) << r.victim << ": " << r.note;
  }
}

}  // namespace
}  // namespace lumen
