// `lumen serve run|start|deploy|status|delete`.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "cli/commands.h"
#include "lumen/api.h"
#include "rpc/gcs_client.h"
#include "rpc/rpc.h"
#include "serve/http_client.h"
#include "serve/instance.h"

namespace lumen::cli {
namespace {

// Runs the serve runtime in this process until SIGINT, SIGTERM or SIGHUP.
int RunInstance(const ServeFlags& f, std::optional<serve::ServeConfig> config,
                std::vector<std::string> code) {
  sigset_t stop_signals = BlockStopSignals();
  Config c;
  c.address = f.address;
  c.token = f.token;
  c.local_nodes = std::max(1, f.nodes);
  std::vector<std::string> serve_code = serve::ServeLibraryPaths();
  code.insert(code.begin(), serve_code.begin(), serve_code.end());
  c.code_paths = code;
  if (absl::Status s = Init(c); !s.ok())
    return Fail("cannot start lumen: " + std::string(s.message()));
  serve::InstanceOptions o;
  o.code = code;
  if (config) {
    o.http_host = config->http_host;
    o.http_port = config->http_port;
    o.grpc_port = config->grpc_port;
    o.proxy_every_node = config->proxy_location == "EveryNode";
  }
  if (f.http_port >= 0) o.http_port = f.http_port;
  auto instance = serve::ServeInstance::Start(o);
  if (!instance.ok()) {
    Shutdown();
    return Fail(std::string(instance.status().message()));
  }
  if (config) {
    if (absl::Status s = (*instance)->Deploy(*config); !s.ok()) {
      instance->reset();
      Shutdown();
      return Fail(std::string(s.message()));
    }
  }
  std::cout << "lumen serve: HTTP on http://" << o.http_host << ":" << (*instance)->http_port()
            << ((*instance)->grpc_port() >= 0
                    ? ", gRPC on " + o.http_host + ":" + std::to_string((*instance)->grpc_port())
                    : std::string())
            << ", admin on 127.0.0.1:" << (*instance)->admin_port() << " (Ctrl-C stops)\n"
            << "lumen serve: manage it with lumen serve status|deploy|delete --admin 127.0.0.1:"
            << (*instance)->admin_port() << std::endl;
  int sig = WaitForStopSignal(stop_signals);
  std::cout << "lumen serve: stopping (" << strsignal(sig) << ")" << std::endl;
  instance->reset();
  Shutdown();
  return 0;
}

// The admin API's HOST:PORT from the cluster's KV.
absl::StatusOr<std::pair<std::string, int>> AdminAddress(const ServeFlags& f) {
  if (!f.admin.empty()) {
    size_t colon = f.admin.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(f.admin.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError("--admin " + f.admin +
                                        ": expected HOST:PORT, as `lumen serve run` prints it");
    }
    return std::make_pair(f.admin.substr(0, colon), port);
  }
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return address.status();
  rpc::GcsClient gcs(*address, ResolveToken(f.token), nullptr);
  proto::KvGetRequest req;
  req.set_ns(serve::kServeKvNamespace);
  req.set_key(serve::kAdminKey);
  auto got =
      rpc::CallSync<proto::KvGetReply>([&](auto cb) { gcs.KvGet(req, cb, {.timeout_ms = 5'000}); });
  if (!got.ok()) {
    return absl::UnavailableError("cannot reach the cluster at " + *address + ": " +
                                  std::string(got.status().message()));
  }
  if (!got->found() || got->value().empty()) {
    return absl::NotFoundError("no serve instance runs in the cluster at " + *address +
                               ": start one with `lumen serve start --code LIB.so` (or run an "
                               "application in the foreground with `lumen serve run FILE`)");
  }
  const std::string& v = got->value();
  size_t colon = v.rfind(':');
  return std::make_pair(v.substr(0, colon), std::stoi(v.substr(colon + 1)));
}

int AdminCall(const ServeFlags& f, const std::string& method, const std::string& target,
              const std::string& body, const std::map<std::string, std::string>& headers,
              serve::Response* out) {
  auto admin = AdminAddress(f);
  if (!admin.ok()) return Fail(std::string(admin.status().message()));
  auto r = serve::HttpCall(admin->first, admin->second, method, target, body, headers);
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status >= 300) {
    std::string msg = r->body;
    try {
      msg = Json::parse(r->body).value("error", r->body);
    } catch (...) {
    }
    return Fail(msg);
  }
  *out = *r;
  return 0;
}

void PrintStatus(const Json& status) {
  for (const auto& p : status.value("proxies", Json::array())) {
    std::string node = p["node"].get<std::string>();
    std::string grpc = p["grpc"].get<std::string>();
    std::string message = p["message"].get<std::string>();
    std::cout << "proxy  node " << node.substr(0, 12) << "  " << p["state"].get<std::string>()
              << "  http://" << p["http"].get<std::string>()
              << (grpc.empty() ? "" : "  grpc " + grpc) << (message.empty() ? "" : "  " + message)
              << "\n";
  }
  const Json& apps = status["applications"];
  if (apps.empty()) {
    std::cout << "no applications\n";
    return;
  }
  for (const auto& [name, app] : apps.items()) {
    std::cout << name << "  " << app["status"].get<std::string>() << "  "
              << (app["route_prefix"].get<std::string>().empty()
                      ? "(no route)"
                      : app["route_prefix"].get<std::string>())
              << "\n";
    for (const auto& [dname, d] : app["deployments"].items()) {
      std::cout << "  " << std::left << std::setw(20) << dname << std::setw(15)
                << d["status"].get<std::string>() << "target " << d["target"].get<int>()
                << "  router " << d["router"].get<std::string>() << "\n";
      if (!d["message"].get<std::string>().empty()) {
        std::cout << "    " << d["message"].get<std::string>() << "\n";
      }
      for (const auto& r : d["replicas"]) {
        std::string node = r["node"].get<std::string>();
        std::cout << "    " << std::setw(18) << r["id"].get<std::string>() << std::setw(10)
                  << r["state"].get<std::string>() << "node "
                  << (node.empty() ? "?" : node.substr(0, 12)) << "\n";
      }
    }
  }
}

}  // namespace

int ServeRun(const ServeFlags& f) {
  auto config = serve::LoadServeConfig(f.file);
  if (!config.ok()) {
    Fail(std::string(config.status().message()));
    return 2;
  }
  std::vector<std::string> code;
  for (const auto& app : config->applications) {
    for (const auto& file : app.code) {
      if (std::find(code.begin(), code.end(), file) == code.end()) code.push_back(file);
    }
  }
  return RunInstance(f, *config, code);
}

int ServeStart(const ServeFlags& f) {
  std::vector<std::string> code;
  for (const auto& c : f.code) {
    std::error_code ec;
    auto p = std::filesystem::canonical(c, ec);
    if (ec) return Fail("--code " + c + ": no such file");
    code.push_back(p.string());
  }
  return RunInstance(f, std::nullopt, code);
}

int ServeDeploy(const ServeFlags& f) {
  auto config = serve::LoadServeConfig(f.file);  // said here, with the line, before anything runs
  if (!config.ok()) {
    Fail(std::string(config.status().message()));
    return 2;
  }
  std::ifstream in(f.file);
  std::stringstream text;
  text << in.rdbuf();
  serve::Response r;
  int rc = AdminCall(f, "PUT", "/api/serve/applications", text.str(),
                     {{"x-lumen-file", f.file},
                      {"x-lumen-base-dir", std::filesystem::current_path().string()},
                      {"content-type", "application/yaml"}},
                     &r);
  if (rc != 0) return rc;
  std::cout << "deployed " << config->applications.size() << " application"
            << (config->applications.size() == 1 ? "" : "s") << " from " << f.file
            << " (lumen serve status shows progress)\n";
  return 0;
}

int ServeStatus(const ServeFlags& f) {
  serve::Response r;
  int rc = AdminCall(f, "GET", "/api/serve/applications", "", {}, &r);
  if (rc != 0) return rc;
  Json status = Json::parse(r.body);
  if (f.json) {
    std::cout << status.dump(2) << "\n";
  } else {
    PrintStatus(status);
  }
  return 0;
}

int ServeDelete(const ServeFlags& f) {
  serve::Response r;
  int rc = AdminCall(f, "DELETE", "/api/serve/applications/" + f.app, "", {}, &r);
  if (rc != 0) return rc;
  std::cout << "deleted " << f.app << "\n";
  return 0;
}

}  // namespace lumen::cli
