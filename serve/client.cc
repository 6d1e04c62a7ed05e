// The serve client; see client.h.
#include "serve/client.h"

#include <set>

#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "common/file_util.h"
#include "lumen/api.h"
#include "serve/app_controller.h"
#include "serve/http_client.h"
#include "serve/json_util.h"
#include "serve/model_apps.h"
#include "serve/route_table.h"

namespace lumen::serve {

std::vector<std::string> ServeLibraryPaths() {
  return {ObjectFileOf(reinterpret_cast<const void*>(&internal::RegisterDeployment)),
          ObjectFileOf(reinterpret_cast<const void*>(&ServeLibraryPaths))};
}

absl::StatusOr<std::string> RecordedAdminAddress() {
  auto* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr) return absl::FailedPreconditionError("lumen is not initialized");
  auto got = rt->KvGet(kServeKvNamespace, kAdminKey);
  if (!got.ok()) return got.status();
  if (!got->has_value() || (*got)->empty()) {
    return absl::NotFoundError("serve does not run in this cluster");
  }
  return **got;
}

absl::StatusOr<ServeEndpoints> EnsureServeRunning(const ManagerOptions& options,
                                                  int64_t timeout_ms) {
  if (lumen::internal::CurrentRuntime() == nullptr) {
    return absl::FailedPreconditionError("call lumen::Init before starting serve");
  }
  ServeEndpoints out;
  auto manager = GetActor<ServeManager>(kManagerActorName, kServeNamespace);
  if (!manager.ok()) {
    if (!absl::IsNotFound(manager.status())) return manager.status();
    manager = Actor(ServeManager::Create)
                  .SetName(kManagerActorName, kServeNamespace)
                  .SetDetached()       // outlives this process
                  .SetMaxRestarts(-1)  // and any of its own
                  .SetMaxConcurrency(2)
                  .Remote(DumpJson(options.ToJson()));
    out.started = true;
  }
  absl::Status ready = manager->Ready(timeout_ms);
  if (absl::IsAlreadyExists(ready)) {  // another client made it first
    manager = GetActor<ServeManager>(kManagerActorName, kServeNamespace);
    if (!manager.ok()) return manager.status();
    out.started = false;
    ready = manager->Ready(timeout_ms);
  }
  if (!ready.ok()) {
    return absl::UnavailableError("the serve manager did not start: " +
                                  std::string(ready.message()));
  }
  auto address = Get(manager->Task(&ServeManager::Address).Remote(), timeout_ms);
  if (!address.ok()) return address.status();
  Json a = Json::parse(*address, nullptr, false);
  if (!a.is_object()) return absl::InternalError("the serve manager's address is unreadable");
  out.admin = a.value("admin", "");
  out.options = ManagerOptions::FromJson(a.value("options", Json()));
  return out;
}

AdminClient::AdminClient(std::string admin, std::string token) : token_(std::move(token)) {
  size_t colon = admin.rfind(':');
  if (colon != std::string::npos) {
    host_ = admin.substr(0, colon);
    if (!absl::SimpleAtoi(admin.substr(colon + 1), &port_)) port_ = 0;
  }
}

absl::StatusOr<Response> AdminClient::Call(const std::string& method, const std::string& target,
                                           const std::string& body, int64_t timeout_ms) {
  if (host_.empty() || port_ <= 0 || port_ > 65535) {
    return absl::InvalidArgumentError("the serve admin address must be HOST:PORT");
  }
  std::map<std::string, std::string> headers = {{"authorization", "Bearer " + token_}};
  if (!body.empty()) headers["content-type"] = "application/json";
  auto r = HttpCall(host_, port_, method, target, body, headers, timeout_ms);
  if (!r.ok()) {
    return absl::UnavailableError("cannot reach the serve admin API at " + host_ + ":" +
                                  std::to_string(port_) + ": " + std::string(r.status().message()));
  }
  if (r->status >= 300) {
    Json j = Json::parse(r->body, nullptr, false);
    std::string msg = j.is_object() ? j.value("error", r->body) : r->body;
    absl::StatusCode code = r->status == 404   ? absl::StatusCode::kNotFound
                            : r->status == 401 ? absl::StatusCode::kUnauthenticated
                            : r->status == 400 ? absl::StatusCode::kInvalidArgument
                            : r->status == 409 ? absl::StatusCode::kFailedPrecondition
                                               : absl::StatusCode::kUnavailable;
    return absl::Status(code, msg);
  }
  return r;
}

namespace {
absl::StatusOr<Json> JsonOf(absl::StatusOr<Response> r) {
  if (!r.ok()) return r.status();
  Json j = Json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return absl::InternalError("the admin API answered no JSON: " + r->body);
  return j;
}
}  // namespace

absl::StatusOr<Json> AdminClient::Deploy(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError("cannot read " + path + ": " +
                                      std::string(text.status().message()));
  }
  // Relative code paths are from where lumen runs, as LoadServeConfig reads them.
  std::string base = std::filesystem::current_path().string();
  return DeployText(*text, path, base);
}

absl::StatusOr<Json> AdminClient::DeployText(const std::string& yaml, const std::string& file_name,
                                             const std::string& base_dir) {
  auto config = ParseServeConfig(yaml, file_name, base_dir);  // errors with the line, here
  if (!config.ok()) return config.status();
  // Code and model files go up by digest, each once (the cluster keeps them).
  std::set<std::string> sent;
  auto upload = [&](const std::string& bytes, const std::string& label) -> absl::Status {
    std::string digest = Sha256Hex(bytes);
    if (!sent.insert(digest).second) return absl::OkStatus();
    auto have = Call("GET", "/api/serve/code/" + digest);
    if (!have.ok() && absl::IsNotFound(have.status())) have = Response{.status = 404};
    if (!have.ok()) return have.status();
    if (have->status == 404) {
      auto put = Call("PUT", "/api/serve/code/" + digest, bytes, 300'000);
      if (!put.ok()) {
        return absl::Status(put.status().code(),
                            "cannot upload " + label + ": " + std::string(put.status().message()));
      }
    } else if (have->status >= 300) {
      return absl::UnavailableError("cannot check " + label + " (" + digest + "): HTTP " +
                                    std::to_string(have->status));
    }
    return absl::OkStatus();
  };
  Json code = Json::object();
  Json models = Json::object();
  for (const AppConfig& app : config->applications) {
    code[app.name] = Json::array();
    for (const std::string& file : app.code) {
      auto bytes = ReadFile(file);
      if (!bytes.ok()) {
        return absl::InvalidArgumentError("application '" + app.name + "': cannot read code file " +
                                          file + ": " + std::string(bytes.status().message()));
      }
      if (absl::Status s = upload(*bytes, file); !s.ok()) return s;
      code[app.name].push_back({{"name", std::filesystem::path(file).filename().string()},
                                {"digest", Sha256Hex(*bytes)}});
    }
    if (!app.models.empty()) {
      auto groups = ReadModelGroups(app, upload);
      if (!groups.ok()) return groups.status();
      models[app.name] = std::move(*groups);
    }
  }
  Json body = {{"config", yaml}, {"file", file_name}, {"code", code}, {"models", models}};
  return JsonOf(Call("PUT", "/api/serve/applications", DumpJson(body)));
}

absl::StatusOr<Json> AdminClient::Status() {
  return JsonOf(Call("GET", "/api/serve/applications"));
}

absl::StatusOr<Json> AdminClient::Delete(const std::string& app) {
  return JsonOf(Call("DELETE", "/api/serve/applications/" + app));
}

absl::StatusOr<Json> AdminClient::Shutdown() { return JsonOf(Call("DELETE", "/api/serve")); }

absl::StatusOr<Json> AdminClient::WaitRunning(int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  absl::StatusOr<Json> last = absl::DeadlineExceededError("no status yet");
  while (std::chrono::steady_clock::now() < deadline) {
    last = Status();
    if (last.ok()) {
      bool all = true;
      for (const auto& [name, app] : (*last)["applications"].items()) {
        std::string s = app.value("status", "");
        if (s == "DEPLOY_FAILED") {
          return absl::FailedPreconditionError("application '" + name +
                                               "' failed to deploy: " + DumpJson(app));
        }
        all = all && s == "RUNNING";
      }
      if (all) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling an outside API
  }
  return absl::DeadlineExceededError(
      "not all applications run after " + std::to_string(timeout_ms) +
      " ms: " + (last.ok() ? DumpJson(*last) : last.status().ToString()));
}

absl::Status StopServe(const std::string& token, int64_t timeout_ms) {
  absl::Status result = absl::OkStatus();
  auto admin = RecordedAdminAddress();
  if (admin.ok()) {
    auto r = AdminClient(*admin, token).Call("DELETE", "/api/serve", "", timeout_ms);
    if (!r.ok()) result = r.status();
  }
  auto manager = GetActor<ServeManager>(kManagerActorName, kServeNamespace);
  if (manager.ok()) {
    absl::Status k = Kill(*manager);
    if (!k.ok() && result.ok()) result = k;
  }
  return result;
}

}  // namespace lumen::serve
