// The public serve API (lumen/serve.h): requests, responses, the registry
// of deployment classes and deployment handles.
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "lumen/serve.h"
#include "serve/dispatcher.h"
#include "serve/json_util.h"
#include "serve/replica.h"

namespace lumen::serve {
namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, internal::DeploymentFactory> factories ABSL_GUARDED_BY(mu);
};
Registry& TheRegistry() {
  static Registry* r = new Registry();
  return *r;
}

}  // namespace

absl::StatusOr<Json> Request::JsonBody() const {
  bool too_deep = false;
  Json j = ParseJson(body, &too_deep);
  if (!j.is_discarded()) return j;
  if (too_deep) {
    return absl::InvalidArgumentError("the body nests deeper than " +
                                      std::to_string(kMaxJsonDepth) + " levels");
  }
  try {  // not JSON: say where it stops being JSON
    return Json::parse(body);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for 1e999
    return absl::InvalidArgumentError(std::string("the body is not JSON: ") + e.what());
  }
}

std::string Request::Header(const std::string& name, const std::string& fallback) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? fallback : it->second;
}

Response Response::Text(std::string text, int status) {
  Response r;
  r.status = status;
  r.headers["content-type"] = "text/plain; charset=utf-8";
  r.body = std::move(text);
  return r;
}

Response Response::FromJson(const Json& value, int status) {
  Response r;
  r.status = status;
  r.headers["content-type"] = "application/json";
  r.body = DumpJson(value);
  return r;
}

Response Response::Error(int status, const std::string& message) {
  return FromJson(Json{{"error", message}}, status);
}

std::future<absl::StatusOr<Response>> DeploymentHandle::Remote(Request request) const {
  auto promise = std::make_shared<std::promise<absl::StatusOr<Response>>>();
  auto future = promise->get_future();
  Dispatcher::Default().Send(app_, deployment_, std::move(request),
                             [promise](absl::StatusOr<Response> r) { promise->set_value(r); });
  return future;
}

absl::StatusOr<Response> DeploymentHandle::Call(const Json& body) const {
  Request r;
  r.method = "POST";
  r.headers["content-type"] = "application/json";
  r.body = DumpJson(body);
  return Remote(std::move(r)).get();
}

DeploymentHandle GetDeploymentHandle(const std::string& deployment, const std::string& app) {
  return DeploymentHandle(app.empty() ? CurrentReplica().app : app, deployment);
}

namespace internal {

void RegisterDeployment(const std::string& name, DeploymentFactory factory) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  r.factories[name] = std::move(factory);
}

const DeploymentFactory* FindDeployment(const std::string& name) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto it = r.factories.find(name);
  return it == r.factories.end() ? nullptr : &it->second;
}

std::vector<std::string> DeploymentNames() {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  std::vector<std::string> out;
  for (const auto& [name, f] : r.factories) out.push_back(name);
  return out;
}

}  // namespace internal
}  // namespace lumen::serve
