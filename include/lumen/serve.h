// lumen::serve: C++ classes behind HTTP and gRPC.
//
// A deployment is a class in the application's shared library:
//
//   class Detector {
//    public:
//     static Detector* Create(const lumen::Json& init_args);
//     lumen::serve::Response Call(const lumen::serve::Request& req);  // required
//     void Reconfigure(const lumen::Json& user_config);               // optional
//     bool CheckHealth();                                              // optional
//     // optional, used when the deployment sets `batching`: one answer per request
//     std::vector<lumen::serve::Response> CallBatch(const std::vector<lumen::serve::Request>&);
//   };
//   LUMEN_DEPLOYMENT(Detector);
//
// Its replicas are actors; proxies and handles pick one per request with the
// deployment's router. `Call` may run on several threads at once (up to the
// deployment's max_ongoing_requests): guard shared state. An exception thrown
// by `Call` becomes a 500 answer naming it; the replica keeps serving.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serialization.h"
#include "nlohmann/json.hpp"

namespace lumen {

using Json = nlohmann::json;

namespace serve {

// One HTTP (or gRPC predict) request as the deployment sees it.
struct Request {
  std::string method = "GET";
  std::string path = "/";                      // below the application's route prefix
  std::map<std::string, std::string> headers;  // names in lower case
  std::map<std::string, std::string> query;
  std::string body;  // raw bytes

  // The body as JSON; INVALID_ARGUMENT saying where it stops being JSON.
  absl::StatusOr<Json> JsonBody() const;
  // A header's value (`name` in any case), or `fallback`.
  std::string Header(const std::string& name, const std::string& fallback = "") const;

  MSGPACK_DEFINE(method, path, headers, query, body);
};

struct Response {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
  // Sent after `body` as chunks of a chunked HTTP answer (a stream).
  std::vector<std::string> chunks;

  static Response Text(std::string text, int status = 200);
  static Response FromJson(const Json& value, int status = 200);
  // {"error": message} with `status`.
  static Response Error(int status, const std::string& message);

  MSGPACK_DEFINE(status, headers, body, chunks);
};

// Calls another deployment of the same application, through the same
// routers as the proxy. Thread-safe; cheap to copy.
class DeploymentHandle {
 public:
  DeploymentHandle() = default;
  DeploymentHandle(std::string app, std::string deployment)
      : app_(std::move(app)), deployment_(std::move(deployment)) {}

  // The answer, or UNAVAILABLE when no replica could take it, or the
  // replica's failure.
  std::future<absl::StatusOr<Response>> Remote(Request request) const;
  // Remote(...).get() with a JSON body.
  absl::StatusOr<Response> Call(const Json& body) const;

  const std::string& app() const { return app_; }
  const std::string& deployment() const { return deployment_; }

 private:
  std::string app_;
  std::string deployment_;
};

// Inside a replica: which one this is (empty strings elsewhere).
struct ReplicaContext {
  std::string app;
  std::string deployment;
  std::string replica;  // "Detector#3": the deployment's name and a number
};
ReplicaContext CurrentReplica();

// A handle to `deployment` of the application this replica belongs to (or
// of `app`). Only inside a replica, or a driver running the serve runtime.
DeploymentHandle GetDeploymentHandle(const std::string& deployment, const std::string& app = "");

namespace internal {

// A deployment's object behind a uniform face.
class DeploymentInstance {
 public:
  virtual ~DeploymentInstance() = default;
  virtual Response Call(const Request& request) = 0;
  // False when the class has no Reconfigure.
  virtual bool Reconfigure(const Json& user_config) = 0;
  virtual bool CheckHealth() = 0;
  // False when the class has no CallBatch.
  virtual bool CanBatch() const = 0;
  virtual std::vector<Response> CallBatch(const std::vector<Request>& requests) = 0;
  // The models it has loaded (a class with LoadedModels(): multiplexed
  // models, which routers prefer to send each model's requests to).
  virtual std::vector<std::string> LoadedModels() { return {}; }
};

using DeploymentFactory = std::function<std::unique_ptr<DeploymentInstance>(const Json&)>;
void RegisterDeployment(const std::string& name, DeploymentFactory factory);
// nullptr when no loaded library declared `name`.
const DeploymentFactory* FindDeployment(const std::string& name);
std::vector<std::string> DeploymentNames();

template <typename T>
class DeploymentAdapter : public DeploymentInstance {
 public:
  explicit DeploymentAdapter(T* object) : object_(object) {}
  Response Call(const Request& request) override { return object_->Call(request); }
  bool Reconfigure(const Json& user_config) override {
    if constexpr (requires(T & t, const Json& j) { t.Reconfigure(j); }) {
      object_->Reconfigure(user_config);
      return true;
    } else {
      return false;
    }
  }
  bool CheckHealth() override {
    if constexpr (requires(T & t) { t.CheckHealth(); }) {
      return object_->CheckHealth();
    } else {
      return true;
    }
  }
  bool CanBatch() const override {
    return requires(T & t, const std::vector<Request>& r) { t.CallBatch(r); };
  }
  std::vector<std::string> LoadedModels() override {
    if constexpr (requires(T & t) { t.LoadedModels(); }) {
      return object_->LoadedModels();
    } else {
      return {};
    }
  }
  std::vector<Response> CallBatch(const std::vector<Request>& requests) override {
    if constexpr (requires(T & t, const std::vector<Request>& r) { t.CallBatch(r); }) {
      return object_->CallBatch(requests);
    } else {
      return {};
    }
  }

 private:
  std::unique_ptr<T> object_;
};

template <typename T>
struct DeploymentRegistrar {
  explicit DeploymentRegistrar(const char* name) {
    RegisterDeployment(name, [](const Json& init_args) -> std::unique_ptr<DeploymentInstance> {
      return std::make_unique<DeploymentAdapter<T>>(T::Create(init_args));
    });
  }
};

}  // namespace internal
}  // namespace serve
}  // namespace lumen

// Declares a deployment class under its own name (put it in the
// application's shared library).
#define LUMEN_DEPLOYMENT(T) \
  static ::lumen::serve::internal::DeploymentRegistrar<T> lumen_deployment_##T(#T)
