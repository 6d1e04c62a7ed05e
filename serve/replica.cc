// The replica actor; see replica.h.
#include "serve/replica.h"

#include <cstdlib>
#include <stdexcept>

#include "lumen/api.h"

namespace lumen::serve {
namespace {

std::mutex context_mu;
ReplicaContext current;  // one replica per worker process

Json ParseOrThrow(const std::string& text, const char* what) {
  if (text.empty()) return Json();
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string(what) + " is not JSON: " + e.what());
  }
}

}  // namespace

ReplicaContext CurrentReplica() {
  std::lock_guard<std::mutex> lock(context_mu);
  return current;
}

Replica::Replica(std::string deployment, std::unique_ptr<internal::DeploymentInstance> instance)
    : deployment_(std::move(deployment)),
      instance_(std::move(instance)),
      last_change_(std::chrono::steady_clock::now()),
      last_report_(last_change_) {}

Replica* Replica::Create(std::string app, std::string deployment, std::string replica_id,
                         std::string cls, std::string init_args_json,
                         std::string user_config_json) {
  const internal::DeploymentFactory* factory = internal::FindDeployment(cls);
  if (factory == nullptr) {
    std::string known;
    for (const auto& n : internal::DeploymentNames()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("no deployment class '" + cls +
                                "' in the application's code (declared: " +
                                (known.empty() ? "none" : known) +
                                "); declare it with LUMEN_DEPLOYMENT(" + cls + ")");
  }
  {
    std::lock_guard<std::mutex> lock(context_mu);
    current = ReplicaContext{app, deployment, replica_id};
  }
  Json init_args = ParseOrThrow(init_args_json, "init_args");
  if (init_args.is_null()) init_args = Json::object();  // so init_args.value(...) works
  Json user_config = ParseOrThrow(user_config_json, "user_config");
  auto instance = (*factory)(init_args);
  if (!instance) throw std::runtime_error(cls + "::Create returned nothing");
  if (!user_config.is_null()) instance->Reconfigure(user_config);
  return new Replica(std::move(deployment), std::move(instance));
}

void Replica::Count(int delta) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  busy_integral_ += ongoing_ * std::chrono::duration<double>(now - last_change_).count();
  last_change_ = now;
  ongoing_ += delta;
  if (delta < 0) {
    completed_++;
    completed_total_++;
  }
}

Response Replica::Handle(Request request) {
  Count(+1);
  Response response;
  try {
    response = instance_->Call(request);
  } catch (const std::exception& e) {
    response = Response::Error(500, deployment_ + " failed: " + e.what());
  } catch (...) {
    response = Response::Error(500, deployment_ + " failed with an unknown exception");
  }
  Count(-1);
  return response;
}

std::string Replica::Reconfigure(std::string user_config_json) {
  try {
    instance_->Reconfigure(ParseOrThrow(user_config_json, "user_config"));
    return "";
  } catch (const std::exception& e) {
    return deployment_ + ".Reconfigure failed: " + e.what();
  }
}

bool Replica::Health() {
  try {
    return instance_->CheckHealth();
  } catch (...) {
    return false;
  }
}

ReplicaStats Replica::Stats() {
  Count(0);  // brings the integral up to now
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  double seconds = std::max(1e-3, std::chrono::duration<double>(now - last_report_).count());
  ReplicaStats s;
  s.ongoing = busy_integral_ / seconds;
  s.completed_per_s = completed_ / seconds;
  s.completed_total = completed_total_;
  s.ongoing_now = ongoing_;
  const char* node = std::getenv("LUMEN_NODE_ID");  // set by lumen_worker
  s.node = node ? node : "";
  busy_integral_ = 0;
  completed_ = 0;
  last_report_ = now;
  return s;
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::Replica::Create, &lumen::serve::Replica::Handle,
             &lumen::serve::Replica::Reconfigure, &lumen::serve::Replica::Health,
             &lumen::serve::Replica::Stats);
