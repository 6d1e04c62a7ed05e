// The replica actor; see replica.h.
#include "serve/replica.h"

#include <unistd.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "lumen/api.h"
#include "serve/channel.h"
#include "serve/route_table.h"

namespace lumen::serve {
namespace {

ABSL_CONST_INIT absl::Mutex context_mu(absl::kConstInit);
ReplicaContext current ABSL_GUARDED_BY(context_mu);  // one replica per worker process

Json ParseOrThrow(const std::string& text, const char* what) {
  if (text.empty()) return Json();
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string(what) + " is not JSON: " + e.what());
  }
}

// Loads a code file shipped with the application (config.h: ShippedFile);
// once per process.
void LoadShipped(const std::string& name, const std::string& digest) {
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  static std::set<std::string> loaded;  // under mu
  absl::MutexLock lock(&mu);
  if (loaded.count(digest)) return;
  auto path = FetchClusterFile(name, digest, "serve-code", 0755);
  if (!path.ok()) throw std::runtime_error(std::string(path.status().message()));
  if (::dlopen(path->c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* err = ::dlerror();
    throw std::runtime_error("cannot load " + name + ": " + (err ? err : "unknown error"));
  }
  loaded.insert(digest);
}

}  // namespace

absl::StatusOr<std::string> FetchClusterFile(const std::string& name, const std::string& digest,
                                             const std::string& cache, int mode) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
      digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("bad shipped file '" + name + "' (" + digest + ")");
  }
  // Kept in this user's private lumen home; a file found there is used
  // only if it is still what the digest says.
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  std::string base = LumenHome() + "/" + cache;
  std::string dir = base + "/" + digest;
  std::string path = dir + "/" + name;
  auto kept = ReadFile(path);
  if (kept.ok() && Sha256Hex(*kept) == digest) return path;
  auto* rt = lumen::internal::CurrentRuntime();
  auto got = rt ? rt->KvGet(kCodeNamespace, digest)
                : absl::FailedPreconditionError("lumen is not initialized");
  if (!got.ok()) {
    return absl::UnavailableError("cannot fetch " + name + ": " + got.status().ToString());
  }
  if (!got->has_value()) {
    return absl::NotFoundError(name + " (" + digest.substr(0, 12) +
                               ") is not in the cluster; deploy the application again");
  }
  if (Sha256Hex(**got) != digest) return absl::DataLossError(name + " does not match its digest");
  absl::Status s = EnsurePrivateDir(LumenHome());
  if (s.ok()) s = EnsurePrivateDir(base);
  if (s.ok()) s = MakeDirs(dir);
  if (s.ok()) s = WriteFileAtomic(path, **got, mode);
  if (!s.ok()) return absl::InternalError("cannot keep " + name + ": " + s.ToString());
  return path;
}

ReplicaContext CurrentReplica() {
  absl::MutexLock lock(&context_mu);
  return current;
}

Replica::Replica(ReplicaContext context, std::string version,
                 std::unique_ptr<internal::DeploymentInstance> instance)
    : context_(std::move(context)),
      version_(std::move(version)),
      deployment_(context_.deployment),
      instance_(std::move(instance)) {
  absl::MutexLock lock(&mu_);
  last_change_ = std::chrono::steady_clock::now();
  last_report_ = last_change_;
}

struct Replica::Batch {
  size_t max_size = 1;
  std::chrono::microseconds max_wait{0};
  absl::Mutex mu;
  struct Waiting {
    Request request;
    std::promise<Response> answer;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<std::shared_ptr<Waiting>> waiting ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread;

  bool StopOrWaiting() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || !waiting.empty(); }
  bool StopOrFull() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stop || waiting.size() >= max_size;
  }
};

Replica* Replica::Create(std::string app, std::string deployment, std::string replica_id,
                         std::string cls, std::string init_args_json, std::string user_config_json,
                         std::string options_json) {
  Json options = ParseOrThrow(options_json, "replica options");
  if (options.is_object() && options.contains("code")) {
    for (const auto& f : options["code"]) {
      LoadShipped(f.at("name").get<std::string>(), f.at("digest").get<std::string>());
    }
  }
  const internal::DeploymentFactory* factory = internal::FindDeployment(cls);
  if (factory == nullptr && cls.rfind("lumen.", 0) == 0) {
    // lumen's own deployments (lumen.Model: models/, lumen.Cache:
    // models/cache/) live in libraries beside this one, loaded by the
    // replicas that host them.
    // Beside liblumen_serve, or (when that came in a job's code package)
    // in the lib folder of the lumen_worker running this.
    std::string dir = ObjectFileOf(reinterpret_cast<const void*>(&FetchClusterFile));
    dir = dir.substr(0, dir.rfind('/') + 1);
    std::string why;
    for (const std::string& d : {dir, ExecutableDir() + "/../lib/"}) {
      for (const char* lib : {"liblumen_models.so", "liblumen_cache.so"}) {
        if (!FileExists(d + lib)) continue;
        if (::dlopen((d + lib).c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
          const char* err = ::dlerror();
          why = err ? err : "unknown error";
        }
        factory = internal::FindDeployment(cls);
        if (factory != nullptr) break;
      }
      if (factory != nullptr) break;
    }
    if (factory == nullptr && why.empty()) why = "no liblumen_models.so or liblumen_cache.so";
    if (factory == nullptr && !why.empty()) {
      throw std::runtime_error("cannot load lumen's library for " + cls + ": " + why);
    }
  }
  if (factory == nullptr) {
    std::string known;
    for (const auto& n : internal::DeploymentNames()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument(
        "no deployment class '" + cls + "' in the application's code (declared: " +
        (known.empty() ? "none" : known) + "); declare it with LUMEN_DEPLOYMENT(" + cls + ")");
  }
  {
    absl::MutexLock lock(&context_mu);
    current = ReplicaContext{app, deployment, replica_id};
  }
  Json init_args = ParseOrThrow(init_args_json, "init_args");
  if (init_args.is_null()) init_args = Json::object();  // so init_args.value(...) works
  Json user_config = ParseOrThrow(user_config_json, "user_config");
  auto instance = (*factory)(init_args);
  if (!instance) throw std::runtime_error(cls + "::Create returned nothing");
  if (!user_config.is_null()) instance->Reconfigure(user_config);
  int max_batch = options.is_object() ? options.value("max_batch_size", 0) : 0;
  if (max_batch > 0 && !instance->CanBatch()) {
    throw std::invalid_argument(cls +
                                " has no CallBatch(const std::vector<Request>&), which "
                                "batching needs: add it or remove `batching`");
  }
  std::string version = options.is_object() ? options.value("version", "") : "";
  auto* replica =
      new Replica(ReplicaContext{app, deployment, replica_id}, version, std::move(instance));
  if (max_batch > 0) {
    replica->batch_ = std::make_unique<Batch>();
    replica->batch_->max_size = static_cast<size_t>(max_batch);
    replica->batch_->max_wait = std::chrono::microseconds(
        static_cast<int64_t>(options.value("batch_wait_timeout_s", 0.01) * 1e6));
    replica->batch_->thread = std::thread([replica] { replica->RunBatches(); });
  }
  if (auto* rt = lumen::internal::CurrentRuntime()) {
    // Serving threads: max_ongoing of them (callers send no more at once)
    // and never more than 256; beyond that, requests wait in the listener.
    constexpr int kMaxServingThreads = 256;
    int threads =
        std::min(options.is_object() ? options.value("max_ongoing", 8) : 8, kMaxServingThreads);
    auto listener = ReplicaListener::Start(rt->ListenHost(), rt->ClusterToken(), threads,
                                           [replica](Request r) { return replica->Handle(r); });
    if (!listener.ok()) {
      delete replica;
      throw std::runtime_error("the replica cannot take requests: " +
                               std::string(listener.status().message()));
    }
    replica->listener_ = std::move(*listener);
  }
  return replica;
}

Replica::~Replica() {
  listener_.reset();
  if (batch_) {
    {
      absl::MutexLock lock(&batch_->mu);
      batch_->stop = true;
    }
    batch_->thread.join();
  }
}

void Replica::RunBatches() {
  Batch& b = *batch_;
  b.mu.Lock();
  while (true) {
    b.mu.Await(absl::Condition(&b, &Batch::StopOrWaiting));
    if (b.stop) break;
    auto left = b.waiting.front()->since + b.max_wait - std::chrono::steady_clock::now();
    b.mu.AwaitWithTimeout(absl::Condition(&b, &Batch::StopOrFull),
                          absl::FromChrono(std::max(left, decltype(left)::zero())));
    std::vector<std::shared_ptr<Batch::Waiting>> taken;
    while (!b.waiting.empty() && taken.size() < b.max_size) {
      taken.push_back(std::move(b.waiting.front()));
      b.waiting.pop_front();
    }
    b.mu.Unlock();
    std::vector<Request> requests;
    for (const auto& w : taken) requests.push_back(w->request);
    std::vector<Response> answers;
    std::string failure;
    try {
      answers = instance_->CallBatch(requests);
      if (answers.size() != requests.size()) {
        failure = deployment_ + ".CallBatch returned " + std::to_string(answers.size()) +
                  " answers for " + std::to_string(requests.size()) + " requests";
      }
    } catch (const std::exception& e) {
      failure = deployment_ + " failed: " + e.what();
    } catch (...) {
      failure = deployment_ + " failed with an unknown exception";
    }
    for (size_t i = 0; i < taken.size(); ++i) {
      taken[i]->answer.set_value(failure.empty() ? std::move(answers[i])
                                                 : Response::Error(500, failure));
    }
    b.mu.Lock();
  }
  for (auto& w : b.waiting) w->answer.set_value(Response::Error(503, "the replica is stopping"));
  b.waiting.clear();
  b.mu.Unlock();
}

Response Replica::Call(const Request& request) {
  if (!batch_) return instance_->Call(request);
  auto w = std::make_shared<Batch::Waiting>();
  w->request = request;
  w->since = std::chrono::steady_clock::now();
  std::future<Response> answer = w->answer.get_future();
  {
    absl::MutexLock lock(&batch_->mu);
    batch_->waiting.push_back(std::move(w));
  }
  return answer.get();
}

void Replica::Count(int delta) {
  absl::MutexLock lock(&mu_);
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
    response = Call(request);
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
  absl::MutexLock lock(&mu_);
  auto now = std::chrono::steady_clock::now();
  double seconds = std::max(1e-3, std::chrono::duration<double>(now - last_report_).count());
  ReplicaStats s;
  s.ongoing = busy_integral_ / seconds;
  s.completed_per_s = completed_ / seconds;
  s.completed_total = completed_total_;
  s.ongoing_now = ongoing_;
  const char* node = std::getenv("LUMEN_NODE_ID");  // set by lumen_worker
  s.node = node ? node : "";
  if (listener_) s.address = listener_->address();
  s.pid = ::getpid();
  s.gpus = lumen::GetRuntimeContext().gpu_ids;
  s.models = instance_->LoadedModels();
  s.app = context_.app;
  s.deployment = context_.deployment;
  s.replica = context_.replica;
  s.version = version_;
  busy_integral_ = 0;
  completed_ = 0;
  last_report_ = now;
  return s;
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::Replica::Create, &lumen::serve::Replica::Reconfigure,
             &lumen::serve::Replica::Health, &lumen::serve::Replica::Stats);
