// The serve tests' cluster: two real nodes (GCS, node managers, replica
// worker processes) with serve started, driven over real HTTP; shared by
// the serve test programs.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "serve/client.h"
#include "serve/config.h"
#include "serve/http_client.h"
#include "serve/json_util.h"
#include "test_util.h"

namespace lumen {

using serve::HttpCall;
using serve::Response;
using testing::WaitUntil;

class ServeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker::LocalClusterOptions o;
    // The second node says it has two GPUs (none is needed: leases get GPU
    // ids and CUDA_VISIBLE_DEVICES whether or not CUDA is there).
    o.nodes = {{{{"CPU", 4}}}, {{{"CPU", 4}, {"GPU", 2}}}};
    // Only serve's own libraries: applications' code is uploaded by deploy.
    auto c = testing::StartAndConnect(o, serve::ServeLibraryPaths());
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
    auto serve = serve::EnsureServeRunning({.http_port = 0, .grpc_port = 0});
    ASSERT_TRUE(serve.ok()) << serve.status();
    admin_address_ = serve->admin;
    admin_ = new serve::AdminClient(serve->admin, internal::CurrentRuntime()->ClusterToken());
    // The proxy of this (the head) node, once every node has one.
    std::string head = GetRuntimeContext().node.Hex();
    Json proxies;
    absl::Status last;
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = admin_->Status();
          last = s.status();
          if (!s.ok()) return false;
          proxies = (*s)["proxies"];
          int running = 0;
          for (const auto& p : proxies) running += p["state"] == "RUNNING";
          return running == 2;
        },
        60'000))
        << serve::DumpJson(proxies, 2) << " " << last;
    for (const auto& p : proxies) {
      if (p["node"] != head) continue;
      std::string http = p["http"], grpc = p["grpc"];
      http_port_ = std::stoi(http.substr(http.rfind(':') + 1));
      grpc_port_ = std::stoi(grpc.substr(grpc.rfind(':') + 1));
    }
    ASSERT_GT(http_port_, 0) << serve::DumpJson(proxies, 2);
  }
  static void TearDownTestSuite() {
    if (admin_ != nullptr) (void)serve::StopServe(internal::CurrentRuntime()->ClusterToken());
    delete admin_;
    Shutdown();
    delete cluster_;
  }
  void TearDown() override { DeployNothing(); }

  // Deletes every application and waits until they are gone.
  static void DeployNothing() {
    auto r = admin_->DeployText("applications: []\n", "empty.yaml", "/");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = admin_->Status();
          return s.ok() && (*s)["applications"].empty();
        },
        60'000));
  }
  static std::string WithApp(std::string text) {
    for (size_t at = 0; (at = text.find("$APP", at)) != std::string::npos;) {
      text.replace(at, 4, LUMEN_OCR_APP);
    }
    return text;
  }

  // The "echo" app at /echo: one Echo deployment with `options` added
  // (", num_replicas: 2, router: queue").
  static std::string EchoApp(const std::string& options = "") {
    return "  - name: echo\n    route_prefix: /echo\n    code: $APP\n    deployments:\n"
           "      - {name: Echo, resources: {CPU: 0.1}" +
           options + "}\n";
  }

  // Deploys `yaml` (the applications part) and waits until it runs.
  void Deploy(const std::string& yaml) {
    auto r = admin_->DeployText(WithApp("applications:\n" + yaml), "test.yaml", "/");
    ASSERT_TRUE(r.ok()) << r.status();
    auto running = admin_->WaitRunning(60'000);
    ASSERT_TRUE(running.ok()) << running.status();
  }
  // Deploys without waiting; the deploy's own error, if any.
  absl::Status DeployNoWait(const std::string& text) {
    return admin_->DeployText(WithApp(text), "test.yaml", "/").status();
  }
  absl::StatusOr<Response> Post(const std::string& path, const std::string& body,
                                std::map<std::string, std::string> headers = {}) {
    return HttpCall("127.0.0.1", http_port_, "POST", path, body, headers);
  }
  absl::StatusOr<Response> GetPath(const std::string& path) {
    return HttpCall("127.0.0.1", http_port_, "GET", path);
  }
  int PidAt(const std::string& path, std::map<std::string, std::string> headers = {}) {
    auto r = HttpCall("127.0.0.1", http_port_, "GET", path, "", headers);
    if (!r.ok() || r->status != 200) return -1;
    return Json::parse(r->body)["pid"].get<int>();
  }
  Json Status() {
    auto s = admin_->Status();
    return s.ok() ? *s : Json::object();
  }
  // The first sample of a /metrics gauge, or -1.
  double Gauge(const std::string& name) {
    auto m = GetPath("/metrics");
    if (!m.ok()) return -1;
    size_t at = m->body.find("\n" + name + "{");
    if (at == std::string::npos) return -1;
    size_t value = m->body.find("} ", at) + 2;
    return std::stod(m->body.substr(value, m->body.find('\n', value) - value));
  }
  int Running(const std::string& app, const std::string& dep) {
    int n = 0;
    Json s = Status();  // kept: the loop below walks into it
    for (const auto& r : s["applications"][app]["deployments"][dep]["replicas"]) {
      n += r["state"] == "RUNNING";
    }
    return n;
  }

  // Sends requests from `threads` threads until stopped; counts failures.
  struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::string last_error;
    std::mutex mu;
    std::vector<std::thread> threads;
    ~Load() { Stop(); }
    void Stop() {
      stop = true;
      for (auto& t : threads) t.join();
      threads.clear();
    }
  };
  void StartLoad(Load* load, const std::string& path, int threads) {
    int port = http_port_;
    for (int i = 0; i < threads; ++i) {
      load->threads.emplace_back([load, path, port] {
        while (!load->stop) {
          auto r = HttpCall("127.0.0.1", port, "POST", path + "?sleep_ms=5", "x");
          if (r.ok() && r->status == 200 && r->body == "x") {
            load->ok++;
          } else {
            load->failed++;
            std::lock_guard<std::mutex> lock(load->mu);
            load->last_error = r.ok() ? std::to_string(r->status) + " " + r->body
                                      : std::string(r.status().message());
          }
        }
      });
    }
  }

  static inline worker::LocalCluster* cluster_ = nullptr;
  static inline serve::AdminClient* admin_ = nullptr;
  static inline std::string admin_address_;
  static inline int http_port_ = 0;
  static inline int grpc_port_ = 0;
};

}  // namespace lumen
