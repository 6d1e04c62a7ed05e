// The serving benchmark (release build; wrk and nginx from
// scripts/setup.sh --bench):
//  1. proxy overhead: wrk against the lumen proxy in front of a no-op
//     deployment and, in the same run, against nginx in front of an
//     equivalent minimal C++ HTTP backend, and against that backend
//     directly; throughput (many connections) and p50/p99 latency (one
//     connection), and what each proxy adds to the backend's p50;
//  2. routers on uneven replicas: four replicas that each do one request at
//     a time, of which two are 3x slower,
//     the same load through rr, pow2, swrr and queue: throughput, p50, p99.
//   serve_bench [--duration-s 10] [--connections 32] [--router-connections 6]
//               [--skip-nginx] [--skip-routers]
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <regex>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/process.h"
#include "lumen/api.h"
#include "serve/client.h"
#include "serve/config.h"
#include "serve/http_client.h"
#include "serve/json_util.h"

namespace {

struct WrkResult {
  double rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::string raw;
};

double ToMs(const std::string& value, const std::string& unit) {
  double v = std::stod(value);
  if (unit == "us") return v / 1000;
  if (unit == "s") return v * 1000;
  return v;
}

WrkResult Wrk(int port, const std::string& path, int connections, int seconds) {
  std::string cmd = "wrk -t1 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) +
                    "s --latency http://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  WrkResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) r.raw += buf;
  pclose(p);
  std::smatch m;
  if (std::regex_search(r.raw, m, std::regex(R"(Requests/sec:\s+([\d.]+))")))
    r.rps = std::stod(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"(50%\s+([\d.]+)(us|ms|s))")))
    r.p50_ms = ToMs(m[1], m[2]);
  if (std::regex_search(r.raw, m, std::regex(R"(99%\s+([\d.]+)(us|ms|s))")))
    r.p99_ms = ToMs(m[1], m[2]);
  if (r.raw.find("Non-2xx") != std::string::npos) std::cerr << "warning: errors in\n" << r.raw;
  return r;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool WaitServing(int port) {
  for (int i = 0; i < 500; ++i) {
    if (lumen::serve::HttpCall("127.0.0.1", port, "GET", "/", "", {}, 1000).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Row(const std::string& name, const WrkResult& one, const WrkResult& many) {
  std::cout << std::left << std::setw(26) << name << std::right << std::fixed
            << std::setprecision(3) << std::setw(10) << one.p50_ms << std::setw(10) << one.p99_ms
            << std::setprecision(0) << std::setw(12) << many.rps << std::setprecision(3)
            << std::setw(10) << many.p50_ms << std::setw(10) << many.p99_ms << "\n";
}

// A config of one app of Echo replicas at /NAME (YAML; JSON values are
// YAML flow).
std::string EchoApp(const std::string& name, const std::string& router, int replicas,
                    const lumen::Json& init_args, int max_ongoing) {
  return "applications:\n  - name: " + name + "\n    route_prefix: /" + name +
         "\n    code: " + LUMEN_OCR_APP + "\n    ingress: Echo\n    deployments:\n" +
         "      - {name: Echo, num_replicas: " + std::to_string(replicas) +
         ", resources: {CPU: 0.01}, router: " + router +
         ", max_ongoing_requests: " + std::to_string(max_ongoing) +
         ", max_queued_requests: -1, init_args: " + lumen::serve::DumpJson(init_args) + "}\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("lumen serving benchmark");
  int duration = 10, connections = 32, router_connections = 6;
  bool skip_nginx = false, skip_routers = false;
  cli.add_option("--duration-s", duration);
  cli.add_option("--connections", connections);
  cli.add_option("--router-connections", router_connections,
                 "load for the router comparison: below the replicas' capacity, so the "
                 "router's choice shows");
  cli.add_flag("--skip-nginx", skip_nginx);
  cli.add_flag("--skip-routers", skip_routers);
  CLI11_PARSE(cli, argc, argv);

  lumen::Config config;
  config.local_nodes = 1;
  config.local_node_resources = {{"CPU", 8}};
  config.code_paths = lumen::serve::ServeLibraryPaths();
  if (auto s = lumen::Init(config); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  int status = 0;
  {
    auto started = lumen::serve::EnsureServeRunning({.http_port = 0});
    if (!started.ok()) {
      std::cerr << started.status() << "\n";
      return 1;
    }
    lumen::serve::AdminClient serve(started->admin,
                                    lumen::internal::CurrentRuntime()->ClusterToken());
    auto deploy = [&](const std::string& yaml) {
      auto r = serve.DeployText(yaml, "bench.yaml", "/");
      if (!r.ok()) std::cerr << "deploy: " << r.status() << "\n";
      auto running = serve.WaitRunning(60'000);
      if (!running.ok()) std::cerr << running.status() << "\n";
    };
    int lumen_port = 0;
    for (int i = 0; i < 600 && lumen_port == 0; ++i) {  // the node's proxy, once it runs
      auto s = serve.Status();
      if (s.ok()) {
        for (const auto& p : (*s)["proxies"]) {
          std::string http = p.value("http", "");
          if (p.value("state", "") == "RUNNING" && !http.empty()) {
            lumen_port = std::stoi(http.substr(http.rfind(':') + 1));
          }
        }
      }
      if (lumen_port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cout << "duration " << duration
              << " s per run; latency with 1 connection, throughput with " << connections << "\n\n";
    std::cout << std::left << std::setw(26) << "target" << std::right << std::setw(10) << "p50 ms"
              << std::setw(10) << "p99 ms" << std::setw(12) << "req/s" << std::setw(10) << "p50 ms"
              << std::setw(10) << "p99 ms"
              << "\n";
    deploy(EchoApp("noop", "pow2", 1, lumen::Json::object(), 256));
    (void)Wrk(lumen_port, "/noop", connections, 2);  // warm up
    WrkResult lumen_one = Wrk(lumen_port, "/noop", 1, duration);
    WrkResult lumen_many = Wrk(lumen_port, "/noop", connections, duration);
    Row("lumen proxy -> replica", lumen_one, lumen_many);

    if (!skip_nginx) {
      lumen::PosixProcessLauncher launcher;
      std::string bin = std::filesystem::path(argv[0]).parent_path().string();
      int backend_port = FreePort();
      auto backend =
          launcher.Launch({.argv = {bin + "/http_backend", std::to_string(backend_port)}});
      int nginx_port = FreePort();
      std::string dir = "/tmp/lumen_bench_nginx_" + std::to_string(getpid());
      std::filesystem::create_directories(dir + "/logs");
      std::ofstream(dir + "/nginx.conf")
          << "worker_processes 1;\ndaemon off;\npid " << dir << "/nginx.pid;\nerror_log " << dir
          << "/error.log;\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n"
          << "  client_body_temp_path " << dir << "/body;\n  proxy_temp_path " << dir << "/proxy;\n"
          << "  upstream backend { server 127.0.0.1:" << backend_port << "; keepalive 64; }\n"
          << "  server {\n    listen 127.0.0.1:" << nginx_port << ";\n    location / {\n"
          << "      proxy_pass http://backend;\n      proxy_http_version 1.1;\n"
          << "      proxy_set_header Connection \"\";\n    }\n  }\n}\n";
      auto nginx =
          launcher.Launch({.argv = {"/usr/sbin/nginx", "-p", dir, "-c", dir + "/nginx.conf"},
                           .stderr_path = dir + "/stderr.log"});
      if (!backend.ok() || !nginx.ok() || !WaitServing(backend_port) || !WaitServing(nginx_port)) {
        std::cerr << "could not start the backend or nginx (is nginx installed? scripts/setup.sh "
                     "--bench)\n";
        status = 1;
      } else {
        WrkResult direct_one = Wrk(backend_port, "/", 1, duration);
        WrkResult direct_many = Wrk(backend_port, "/", connections, duration);
        Row("C++ backend, direct", direct_one, direct_many);
        (void)Wrk(nginx_port, "/", connections, 2);
        WrkResult nginx_one = Wrk(nginx_port, "/", 1, duration);
        WrkResult nginx_many = Wrk(nginx_port, "/", connections, duration);
        Row("nginx -> C++ backend", nginx_one, nginx_many);
        std::cout << std::setprecision(3) << "\nadded at p50 (1 connection): lumen "
                  << lumen_one.p50_ms - direct_one.p50_ms << " ms (proxy + replica call), nginx "
                  << nginx_one.p50_ms - direct_one.p50_ms << " ms\n"
                  << std::setprecision(2)
                  << "throughput: lumen / nginx = " << lumen_many.rps / nginx_many.rps << "\n";
      }
      for (auto* p : {&backend, &nginx}) {
        if (p->ok()) (**p)->Terminate(2000);
      }
      std::filesystem::remove_all(dir);
    }

    if (!skip_routers) {
      std::cout << "\nrouters: 4 replicas doing one request at a time (2 ms of work; Echo#1 "
                   "and Echo#2 3x slower), max_ongoing_requests 8; "
                << router_connections << " connections\n";
      std::cout << std::left << std::setw(26) << "router" << std::right << std::setw(12) << "req/s"
                << std::setw(10) << "p50 ms" << std::setw(10) << "p99 ms"
                << "\n";
      lumen::Json uneven = {
          {"delay_ms", 2}, {"slow", {1, 2}}, {"slow_factor", 3}, {"serial", true}};
      for (std::string router : {"rr", "pow2", "swrr", "queue"}) {
        // Its own app: replicas Echo#1..#4 from the first deploy on (a
        // router change keeps them).
        deploy(EchoApp("uneven", router, 4, uneven, 8));
        // Warm up: swrr learns the weights.
        (void)Wrk(lumen_port, "/uneven", router_connections, 3);
        WrkResult r = Wrk(lumen_port, "/uneven", router_connections, duration);
        std::cout << std::left << std::setw(26) << router << std::right << std::fixed
                  << std::setprecision(0) << std::setw(12) << r.rps << std::setprecision(2)
                  << std::setw(10) << r.p50_ms << std::setw(10) << r.p99_ms << "\n";
      }
    }
  }
  (void)lumen::serve::StopServe(lumen::internal::CurrentRuntime()->ClusterToken());
  lumen::Shutdown();
  return status;
}
