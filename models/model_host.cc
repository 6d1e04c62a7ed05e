// The model replica's host; see model_host.h.
#include "models/model_host.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "lumen/api.h"
#include "lumen/engine.h"
#include "models/v2.h"
#include "proto/grpc_service.pb.h"
#include "serve/replica.h"

namespace lumen::models {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Bytes of one row (the first dimension) of `t`, for fixed-size types.
size_t RowBytes(const Tensor& t) {
  return t.shape.empty() || t.shape[0] == 0 ? 0 : t.data.size() / static_cast<size_t>(t.shape[0]);
}

// Rows [from, from + n) of `t` (its first dimension).
absl::StatusOr<Tensor> Rows(const Tensor& t, int64_t from, int64_t n) {
  Tensor out{t.name, t.type, t.shape, {}};
  out.shape[0] = n;
  if (t.type != DataType::kBytes) {
    size_t row = RowBytes(t);
    out.data = t.data.substr(static_cast<size_t>(from) * row, static_cast<size_t>(n) * row);
    return out;
  }
  auto all = t.Strings();
  if (!all.ok()) return all.status();
  size_t per_row = t.shape[0] == 0 ? 0 : all->size() / static_cast<size_t>(t.shape[0]);
  std::vector<std::string> part(all->begin() + from * per_row, all->begin() + (from + n) * per_row);
  return Tensor::FromStrings(t.name, out.shape, part);
}

// A fixed-bucket histogram in Prometheus' shape.
struct Histogram {
  explicit Histogram(std::vector<double> bounds) : bounds(std::move(bounds)) {
    counts.assign(this->bounds.size() + 1, 0);
  }
  void Add(double v) {
    size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
    counts[i]++;
    sum += v;
    count++;
  }
  void Write(std::string* out, const std::string& name, const std::string& labels) const {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += counts[i];
      absl::StrAppend(out, name, "_bucket{", labels, ",le=\"", bounds[i], "\"} ", cumulative, "\n");
    }
    absl::StrAppend(out, name, "_bucket{", labels, ",le=\"+Inf\"} ", count, "\n");
    absl::StrAppend(out, name, "_sum{", labels, "} ", sum, "\n");
    absl::StrAppend(out, name, "_count{", labels, "} ", count, "\n");
  }
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;
};

std::vector<double> TimeBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

std::string SpecString(const TensorSpec& s) {
  return absl::StrCat("'", s.name, "' (", DataTypeName(s.type), " ", ShapeString(s.dims), ")");
}

std::string SpecList(const std::vector<TensorSpec>& specs) {
  std::vector<std::string> parts;
  for (const auto& s : specs) parts.push_back(SpecString(s));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

serve::Response ErrorResponse(const absl::Status& status) {
  int code = 500;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      code = 400;
      break;
    case absl::StatusCode::kNotFound:
      code = 404;
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      code = 503;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      code = 504;
      break;
    default:
      break;
  }
  serve::Response r = serve::Response::Error(code, std::string(status.message()));
  if (code == 503) r.headers["retry-after"] = "1";
  return r;
}

struct ModelHost::Metrics {
  struct PerModel {
    uint64_t requests = 0;
    uint64_t failures = 0;
    Histogram batch{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
    Histogram queue{TimeBuckets()};
    Histogram compute{TimeBuckets()};
  };
  mutable absl::Mutex mu;
  std::map<std::string, PerModel> models ABSL_GUARDED_BY(mu);
};

// One loaded version. Requests hold it (shared_ptr) while they run.
struct ModelHost::Version {
  std::string model;
  int64_t number = 0;
  int max_batch = 0;
  std::unique_ptr<Engine> engine;
  std::vector<TensorSpec> inputs, outputs;
  Metrics* metrics = nullptr;

  // The dynamic batcher (none without dynamic_batching).
  struct Pending {
    std::vector<Tensor> inputs;
    int64_t rows = 0;
    Clock::time_point since;
    std::promise<absl::StatusOr<std::vector<Tensor>>> answer;
  };
  bool batching = false;
  Clock::duration delay{};
  size_t max_queue = 1024;
  absl::Mutex mu;
  std::deque<std::shared_ptr<Pending>> queue ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  int64_t last_rows = 0;  // of the last batch (the batcher's thread only)
  uint64_t arrivals ABSL_GUARDED_BY(mu) = 0;
  uint64_t seen_arrivals ABSL_GUARDED_BY(mu) = 0;
  Clock::time_point last_arrival ABSL_GUARDED_BY(mu);
  static constexpr Clock::duration kArrivalGap = std::chrono::microseconds(100);
  std::thread thread;

  ~Version() {
    if (thread.joinable()) {
      {
        absl::MutexLock lock(&mu);
        stop = true;
      }
      thread.join();
    }
  }

  bool StopOrQueued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || !queue.empty(); }
  bool StopOrArrived() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stop || arrivals != seen_arrivals;
  }
  bool StopOrFull() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    int64_t rows = 0;
    for (const auto& p : queue) rows += p->rows;
    return stop || rows >= max_batch;
  }

  // Runs `inputs` (checked, in Inputs() order) and records the figures.
  absl::StatusOr<std::vector<Tensor>> RunNow(const std::vector<Tensor>& in, int64_t rows,
                                             double queued_s) {
    auto start = Clock::now();
    absl::StatusOr<std::vector<Tensor>> out;
    try {
      out = engine->Run(in);
    } catch (const std::exception& e) {
      out = absl::InternalError(absl::StrCat("model '", model, "' failed: ", e.what()));
    }
    double compute_s = Seconds(Clock::now() - start);
    absl::MutexLock lock(&metrics->mu);
    auto& m = metrics->models[model];
    m.batch.Add(static_cast<double>(std::max<int64_t>(rows, 1)));
    m.queue.Add(queued_s);
    m.compute.Add(compute_s);
    return out;
  }

  absl::StatusOr<std::vector<Tensor>> Run(std::vector<Tensor> in, int64_t rows) {
    if (!batching) return RunNow(in, rows, 0);
    auto p = std::make_shared<Pending>();
    p->inputs = std::move(in);
    p->rows = rows;
    p->since = Clock::now();
    auto answer = p->answer.get_future();
    {
      absl::MutexLock lock(&mu);
      if (stop) return absl::UnavailableError("model '" + model + "' is unloading");
      if (queue.size() >= max_queue) {
        return absl::ResourceExhaustedError(absl::StrCat("model '", model, "' has ", queue.size(),
                                                         " requests queued; retry later"));
      }
      queue.push_back(std::move(p));
      arrivals++;
      last_arrival = Clock::now();
    }
    return answer.get();
  }

  // Same shape apart from the batch dimension: can share a batch.
  static bool Compatible(const Pending& a, const Pending& b) {
    for (size_t i = 0; i < a.inputs.size(); ++i) {
      const auto& x = a.inputs[i].shape;
      const auto& y = b.inputs[i].shape;
      if (x.size() != y.size() || !std::equal(x.begin() + 1, x.end(), y.begin() + 1)) return false;
    }
    return true;
  }

  void Loop() {
    mu.Lock();
    while (true) {
      mu.Await(absl::Condition(this, &Version::StopOrQueued));
      if (stop) break;
      // Waiting for a batch to fill only pays while requests come
      // together: after a batch of one (a lone caller) the next runs at
      // once, so a single client never waits the delay. Otherwise the batch
      // closes when full, when its first request has waited the delay, or
      // when no request came for kArrivalGap (the callers there are have
      // all sent: few clients do not wait the whole delay for more).
      if (last_rows > 1) {
        while (!StopOrFull()) {
          auto now = Clock::now();
          auto until = std::min(queue.front()->since + delay, last_arrival + kArrivalGap);
          if (now >= until) break;
          seen_arrivals = arrivals;
          if (!mu.AwaitWithTimeout(absl::Condition(this, &Version::StopOrArrived),
                                   absl::FromChrono(until - now))) {
            break;
          }
        }
        if (stop) break;
      }
      std::vector<std::shared_ptr<Pending>> taken;
      int64_t rows = 0;
      for (auto it = queue.begin(); it != queue.end();) {
        if (rows + (*it)->rows <= max_batch &&
            (taken.empty() || Compatible(*taken.front(), **it))) {
          rows += (*it)->rows;
          taken.push_back(std::move(*it));
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      mu.Unlock();
      RunBatch(taken, rows);
      last_rows = rows;
      mu.Lock();
    }
    for (auto& p : queue) p->answer.set_value(absl::UnavailableError("model is unloading"));
    queue.clear();
    mu.Unlock();
  }

  void RunBatch(std::vector<std::shared_ptr<Pending>>& taken, int64_t rows) {
    double queued_s = Seconds(Clock::now() - taken.front()->since);
    if (taken.size() == 1) {
      taken[0]->answer.set_value(RunNow(taken[0]->inputs, rows, queued_s));
      return;
    }
    std::vector<Tensor> merged = taken[0]->inputs;
    for (size_t i = 0; i < merged.size(); ++i) {
      merged[i].shape[0] = rows;
      for (size_t k = 1; k < taken.size(); ++k) merged[i].data += taken[k]->inputs[i].data;
    }
    auto out = RunNow(merged, rows, queued_s);
    if (out.ok()) {
      for (const auto& t : *out) {
        if (t.shape.empty() || t.shape[0] != rows) {
          out = absl::InternalError(absl::StrCat("model '", model, "' answered output '", t.name,
                                                 "' of shape ", ShapeString(t.shape),
                                                 " for a batch of ", rows));
          break;
        }
      }
    }
    int64_t from = 0;
    for (auto& p : taken) {
      if (!out.ok()) {
        p->answer.set_value(out.status());
        continue;
      }
      std::vector<Tensor> mine;
      absl::Status failed;
      for (const auto& t : *out) {
        auto part = Rows(t, from, p->rows);
        if (!part.ok()) {
          failed = part.status();
          break;
        }
        mine.push_back(std::move(*part));
      }
      from += p->rows;
      if (failed.ok()) {
        p->answer.set_value(std::move(mine));
      } else {
        p->answer.set_value(failed);
      }
    }
  }

  // The request's inputs checked against the declared ones and put in
  // their order; *rows = the batch size (1 without batching).
  absl::StatusOr<std::vector<Tensor>> Check(std::vector<Tensor> given, int64_t* rows) const {
    std::vector<Tensor> ordered(inputs.size());
    std::vector<bool> seen(inputs.size(), false);
    for (auto& t : given) {
      auto it = std::find_if(inputs.begin(), inputs.end(),
                             [&](const TensorSpec& s) { return s.name == t.name; });
      if (it == inputs.end()) {
        return absl::InvalidArgumentError(absl::StrCat("model '", model, "' has no input '", t.name,
                                                       "'; it takes ", SpecList(inputs)));
      }
      size_t i = it - inputs.begin();
      if (seen[i]) {
        return absl::InvalidArgumentError("input '" + t.name + "' is given twice");
      }
      if (t.type != it->type) {
        return absl::InvalidArgumentError(absl::StrCat("input '", t.name, "' has datatype ",
                                                       DataTypeName(t.type), "; model '", model,
                                                       "' expects ", DataTypeName(it->type)));
      }
      if (!ShapeMatches(t.shape, it->dims)) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", t.name, "' has shape ", ShapeString(t.shape), "; model '",
                         model, "' expects ", ShapeString(it->dims), " (-1: any size)"));
      }
      if (auto s = t.CheckSize(); !s.ok()) return absl::InvalidArgumentError(s.message());
      seen[i] = true;
      ordered[i] = std::move(t);
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!seen[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", model, "' needs input ", SpecString(inputs[i])));
      }
    }
    *rows = 1;
    if (max_batch > 0 && !ordered.empty()) {
      *rows = ordered[0].shape.empty() ? 0 : ordered[0].shape[0];
      for (const auto& t : ordered) {
        if (t.shape.empty() || t.shape[0] != *rows) {
          return absl::InvalidArgumentError(
              absl::StrCat("input '", t.name, "' has a batch of ", t.shape.empty() ? 0 : t.shape[0],
                           " but input '", ordered[0].name, "' has ", *rows,
                           ": every input needs the same first dimension"));
        }
      }
      if (*rows < 1 || *rows > max_batch) {
        return absl::InvalidArgumentError(absl::StrCat("a batch of ", *rows, " is not within 1..",
                                                       max_batch, " (model '", model,
                                                       "' max_batch_size)"));
      }
    }
    return ordered;
  }
};

struct ModelHost::Entry {
  RepoModel meta;
  std::string key;  // what was loaded: config and files
  enum State { kUnloaded, kLoading, kReady, kFailed } state = kUnloaded;
  std::string reason;
  std::map<int64_t, std::shared_ptr<Version>> versions;  // loaded (under ModelHost::mu_)
  uint64_t used = 0;
  absl::Mutex load_mu;  // one load of this model at a time
};

namespace {
const char* StateName(int s) {
  static constexpr std::array<const char*, 4> kNames = {"UNAVAILABLE", "LOADING", "READY",
                                                        "UNAVAILABLE"};
  return kNames[s];
}

std::string KeyOf(const RepoModel& m) {
  std::string k = m.config_text;
  for (const auto& f : m.files) absl::StrAppend(&k, "\n", f.path, "=", f.digest);
  for (int64_t v : m.versions) absl::StrAppend(&k, "\nv", v);
  return Sha256Hex(k);
}
}  // namespace

ModelHost::ModelHost(HostOptions options)
    : options_(std::move(options)), metrics_(std::make_unique<Metrics>()) {
  if (!options_.fetch) {
    options_.fetch = [](const ModelFile& f) -> absl::StatusOr<std::string> {
      return serve::FetchClusterFile(fs::path(f.path).filename().string(), f.digest, "model-files");
    };
  }
  if (options_.work_dir.empty()) options_.work_dir = LumenHome() + "/models";
}

ModelHost::~ModelHost() = default;

absl::StatusOr<std::shared_ptr<ModelHost::Version>> ModelHost::LoadVersion(const RepoModel& m,
                                                                           int64_t number) {
  // The version's folder, laid out as in the repository from fetched files.
  std::string vprefix = std::to_string(number) + "/";
  std::string k = m.config_text;
  std::vector<std::pair<std::string, std::string>> files;  // relative path, local file
  for (const auto& f : m.files) {
    bool versioned = f.path.find('/') != std::string::npos;
    if (versioned && f.path.rfind(vprefix, 0) != 0) continue;
    auto local = options_.fetch(f);
    if (!local.ok()) {
      return absl::UnavailableError(absl::StrCat("model '", m.name, "' version ", number,
                                                 ": cannot fetch ", f.path, ": ",
                                                 local.status().message()));
    }
    files.emplace_back(f.path, *local);
    absl::StrAppend(&k, "\n", f.path, "=", f.digest);
  }
  fs::path dir = fs::path(options_.work_dir) / m.name / Sha256Hex(k).substr(0, 16);
  if (!FileExists((dir / ".complete").string())) {
    fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
    std::error_code ec;
    fs::remove_all(tmp, ec);
    for (const auto& [rel, local] : files) {
      fs::path to = tmp / rel;
      fs::create_directories(to.parent_path(), ec);
      fs::create_hard_link(local, to, ec);
      if (ec) {
        ec.clear();
        fs::copy_file(local, to, fs::copy_options::overwrite_existing, ec);
      }
      if (ec) {
        return absl::InternalError("cannot lay out model '" + m.name + "' at " + to.string() +
                                   ": " + ec.message());
      }
    }
    (void)WriteFileAtomic((tmp / ".complete").string(), "");
    fs::remove_all(dir, ec);
    fs::create_directories(dir.parent_path(), ec);
    fs::rename(tmp, dir, ec);
    if (ec && !FileExists((dir / ".complete").string())) {
      return absl::InternalError("cannot lay out model '" + m.name + "': " + ec.message());
    }
  }
  auto factory = FindEngine(m.config);
  if (!factory.ok()) return factory.status();
  LoadContext ctx;
  ctx.model = m.name;
  ctx.version = number;
  ctx.model_dir = dir.string();
  ctx.version_dir = (dir / std::to_string(number)).string();
  ctx.config = &m.config;
  ctx.max_batch_size = m.config.max_batch_size();
  for (const auto& [key, p] : m.config.parameters()) ctx.parameters[key] = p.string_value();
  bool gpu = false;
  for (const auto& g : m.config.instance_group()) {
    gpu = gpu || g.kind() == config::ModelInstanceGroup::KIND_GPU;
    if (g.count() > 0 && !ctx.parameters.count("instances")) {
      ctx.parameters["instances"] = std::to_string(g.count());
    }
  }
  if (gpu) {
    // The node leased GPUs to this replica and CUDA_VISIBLE_DEVICES names
    // them, so CUDA numbers the first one 0. Without a lease (a host made
    // outside a cluster) the first GPU, if any.
    ctx.gpu = 0;
    std::vector<int> leased = lumen::GetRuntimeContext().gpu_ids;
    LUMEN_LOG_INFO("model {} version {} on GPU {} (CUDA_VISIBLE_DEVICES={})", m.name, number,
                   leased.empty() ? std::string("0, none leased") : absl::StrJoin(leased, ","),
                   std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "");
  }
  absl::StatusOr<std::unique_ptr<Engine>> engine;
  try {
    engine = (*factory)(ctx);
  } catch (const std::exception& e) {
    engine = absl::InternalError(e.what());
  }
  if (!engine.ok()) {
    return absl::Status(engine.status().code(),
                        absl::StrCat("model '", m.name, "' version ", number,
                                     " did not load: ", engine.status().message()));
  }
  auto v = std::make_shared<Version>();
  v->model = m.name;
  v->number = number;
  v->max_batch = m.config.max_batch_size();
  v->engine = std::move(*engine);
  v->inputs = v->engine->Inputs();
  v->outputs = v->engine->Outputs();
  v->metrics = metrics_.get();
  if (m.config.has_dynamic_batching() && v->max_batch > 1) {
    v->batching = true;
    v->delay =
        std::chrono::microseconds(m.config.dynamic_batching().max_queue_delay_microseconds());
    v->max_queue = options_.max_queue;
    Version* raw = v.get();
    v->thread = std::thread([raw] { raw->Loop(); });
  }
  return v;
}

absl::Status ModelHost::LoadEntry(const std::shared_ptr<Entry>& e) {
  absl::MutexLock load(&e->load_mu);
  RepoModel meta;
  {
    absl::MutexLock lock(&mu_);
    if (e->state == Entry::kReady) return absl::OkStatus();
    e->state = Entry::kLoading;
    meta = e->meta;
  }
  std::map<int64_t, std::shared_ptr<Version>> loaded;
  absl::Status failed;
  for (int64_t v : meta.versions) {
    auto got = LoadVersion(meta, v);
    if (!got.ok()) {
      failed = got.status();
      break;
    }
    loaded[v] = std::move(*got);
  }
  absl::MutexLock lock(&mu_);
  if (!failed.ok()) {
    e->state = e->versions.empty() ? Entry::kFailed : Entry::kReady;
    e->reason = std::string(failed.message());
    return failed;
  }
  e->versions = std::move(loaded);
  e->state = Entry::kReady;
  e->reason.clear();
  e->used = ++clock_;
  EvictBeyondLimit(meta.name);
  return absl::OkStatus();
}

void ModelHost::EvictBeyondLimit(const std::string& keep) {
  if (options_.max_loaded == 0) return;
  while (true) {
    std::vector<std::shared_ptr<Entry>> ready;
    for (auto& [name, e] : models_) {
      if (e->state == Entry::kReady && name != keep) ready.push_back(e);
    }
    if (ready.size() + 1 <= options_.max_loaded) return;
    auto oldest = *std::min_element(ready.begin(), ready.end(),
                                    [](const auto& a, const auto& b) { return a->used < b->used; });
    oldest->versions.clear();  // requests in flight keep theirs
    oldest->state = Entry::kUnloaded;
  }
}

absl::Status ModelHost::Apply(const json& j) {
  absl::MutexLock apply(&apply_mu_);
  if (!j.is_object() || !j.contains("models") || !j["models"].is_array()) {
    return absl::InvalidArgumentError("expected {\"models\": [...]}");
  }
  std::map<std::string, RepoModel> wanted;
  for (const auto& mj : j["models"]) {
    auto m = ModelFromJson(mj);
    if (!m.ok()) return m.status();
    wanted[m->name] = std::move(*m);
  }
  std::vector<std::shared_ptr<Entry>> to_load;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = models_.begin(); it != models_.end();) {
      it = wanted.count(it->first) ? std::next(it) : models_.erase(it);
    }
    for (auto& [name, m] : wanted) {
      std::string key = KeyOf(m);
      auto& e = models_[name];
      if (e && e->key == key) continue;
      if (!e) e = std::make_shared<Entry>();
      // A changed model: the new versions load beside the serving ones
      // (e->versions), which keep answering until the swap in LoadEntry.
      e->meta = std::move(m);
      e->key = key;
      if (e->state == Entry::kReady) e->state = Entry::kLoading;
      if (e->state == Entry::kFailed) e->state = Entry::kUnloaded;
      if (options_.max_loaded == 0 || !e->versions.empty()) to_load.push_back(e);
    }
  }
  std::vector<std::string> failures;
  for (auto& e : to_load) {
    {
      absl::MutexLock lock(&mu_);
      if (e->state == Entry::kLoading && !e->versions.empty()) e->state = Entry::kUnloaded;
    }
    // LoadEntry swaps in the new versions only when all of them loaded.
    absl::Status s = LoadEntry(e);
    if (!s.ok()) failures.push_back(std::string(s.message()));
  }
  if (!failures.empty()) return absl::FailedPreconditionError(absl::StrJoin(failures, "; "));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ModelHost::Version>> ModelHost::Pick(const std::string& model,
                                                                    const std::string& version) {
  std::shared_ptr<Entry> e;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it == models_.end()) {
      return absl::NotFoundError("unknown model '" + model + "' (see /v2/repository/index)");
    }
    e = it->second;
  }
  int64_t asked = 0;
  if (!version.empty() && (!absl::SimpleAtoi(version, &asked) || asked <= 0)) {
    return absl::NotFoundError("model '" + model + "' has no version '" + version + "'");
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      const auto& served = e->meta.versions;
      if (asked && std::find(served.begin(), served.end(), asked) == served.end()) {
        return absl::NotFoundError(absl::StrCat("model '", model, "' has no version ", asked,
                                                " (serving ", absl::StrJoin(served, ", "), ")"));
      }
      if (!e->versions.empty()) {
        auto it = asked ? e->versions.find(asked) : std::prev(e->versions.end());
        if (it != e->versions.end()) {
          e->used = ++clock_;
          return it->second;
        }
      }
      if (options_.max_loaded == 0 || attempt == 1) {
        std::string state = StateName(e->state);
        return absl::UnavailableError(
            absl::StrCat("model '", model, "'", asked ? absl::StrCat(" version ", asked) : "",
                         " is ", state, e->reason.empty() ? "" : ": " + e->reason));
      }
    }
    // Multiplexed and not loaded here: load it now (LRU evicts another).
    if (absl::Status s = LoadEntry(e); !s.ok()) return absl::UnavailableError(s.message());
  }
  return absl::UnavailableError("model '" + model + "' is not loaded");
}

serve::Response ModelHost::Infer(const std::string& model, const std::string& version,
                                 const serve::Request& request) {
  bool grpc = request.Header("x-lumen-v2") == "grpc";
  auto count = [&](bool failed) {
    absl::MutexLock lock(&metrics_->mu);
    auto& m = metrics_->models[model];
    m.requests++;
    if (failed) m.failures++;
  };
  absl::StatusOr<v2::InferRequest> parsed;
  if (grpc) {
    inference::ModelInferRequest in;
    if (!in.ParseFromString(request.body)) {
      parsed = absl::InvalidArgumentError("the ModelInferRequest does not parse");
    } else {
      parsed = v2::FromGrpc(in);
    }
  } else {
    parsed = v2::ParseHttpInfer(request.body, request.Header("inference-header-content-length"));
  }
  auto fail = [&](const absl::Status& s) {
    count(true);
    return ErrorResponse(s);
  };
  if (!parsed.ok()) return fail(parsed.status());
  auto v = Pick(model, version);
  if (!v.ok()) return fail(v.status());
  int64_t rows = 1;
  auto inputs = (*v)->Check(std::move(parsed->inputs), &rows);
  if (!inputs.ok()) return fail(inputs.status());
  for (const auto& o : parsed->outputs) {
    const auto& outs = (*v)->outputs;
    if (std::none_of(outs.begin(), outs.end(), [&](const auto& s) { return s.name == o.name; })) {
      return fail(absl::InvalidArgumentError(absl::StrCat("model '", model, "' has no output '",
                                                          o.name, "'; it gives ", SpecList(outs))));
    }
  }
  auto out = (*v)->Run(std::move(*inputs), rows);
  if (!out.ok()) return fail(out.status());
  count(false);
  v2::InferResponse response;
  response.model = model;
  response.version = std::to_string((*v)->number);
  response.id = parsed->id;
  for (auto& t : *out) {
    bool wanted =
        parsed->outputs.empty() || std::any_of(parsed->outputs.begin(), parsed->outputs.end(),
                                               [&](const auto& o) { return o.name == t.name; });
    if (wanted) response.outputs.push_back(std::move(t));
  }
  serve::Response r;
  if (grpc) {
    inference::ModelInferResponse pb;
    v2::ToGrpc(response, &pb);
    r.body = pb.SerializeAsString();
    r.headers["content-type"] = "application/x-protobuf";
    return r;
  }
  size_t header_length = 0;
  r.body = v2::EncodeHttpInfer(response, *parsed, &header_length);
  if (header_length > 0) {
    r.headers["inference-header-content-length"] = std::to_string(header_length);
    r.headers["content-type"] = "application/octet-stream";
  } else {
    r.headers["content-type"] = "application/json";
  }
  return r;
}

serve::Response ModelHost::Handle(const serve::Request& request) {
  // /v2/models/NAME[/versions/V][/ready|/infer]
  std::vector<std::string> parts = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  if (parts.size() < 3 || parts[0] != "v2" || parts[1] != "models") {
    return serve::Response::Error(404,
                                  "a model answers /v2/models/NAME[/versions/V][/ready|/infer]"
                                  ", not " +
                                      request.path);
  }
  std::string model = parts[2], version, action;
  size_t i = 3;
  if (parts.size() > i + 1 && parts[i] == "versions") {
    version = parts[i + 1];
    i += 2;
  }
  if (parts.size() > i) action = parts[i++];
  if (parts.size() > i || (action != "" && action != "ready" && action != "infer")) {
    return serve::Response::Error(404, "no such v2 endpoint: " + request.path);
  }
  if (action == "infer") {
    if (request.method != "POST") return serve::Response::Error(405, "infer takes POST");
    return Infer(model, version, request);
  }
  auto v = Pick(model, version);
  if (action == "ready") {
    if (!v.ok()) return ErrorResponse(v.status());
    return serve::Response::FromJson({{"name", model}, {"ready", true}});
  }
  // Metadata: the model's (from the version asked, or the newest).
  if (!v.ok()) return ErrorResponse(v.status());
  json versions = json::array();
  std::string platform;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it != models_.end()) {
      for (int64_t n : it->second->meta.versions) versions.push_back(std::to_string(n));
      const auto& c = it->second->meta.config;
      platform = !c.platform().empty() ? c.platform() : c.backend();
    }
  }
  auto specs = [](const std::vector<TensorSpec>& list) {
    json out = json::array();
    for (const auto& s : list) {
      out.push_back({{"name", s.name}, {"datatype", DataTypeName(s.type)}, {"shape", s.dims}});
    }
    return out;
  };
  return serve::Response::FromJson({{"name", model},
                                    {"versions", versions},
                                    {"platform", platform},
                                    {"inputs", specs((*v)->inputs)},
                                    {"outputs", specs((*v)->outputs)}});
}

std::vector<std::string> ModelHost::Loaded() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : models_) {
    if (!e->versions.empty()) out.push_back(name);
  }
  return out;
}

json ModelHost::Status() const {
  absl::MutexLock lock(&mu_);
  json out = json::object();
  for (const auto& [name, e] : models_) {
    json loaded = json::array();
    for (const auto& [n, v] : e->versions) loaded.push_back(n);
    out[name] = {{"state", StateName(e->state)},
                 {"versions", e->meta.versions},
                 {"loaded", loaded},
                 {"reason", e->reason},
                 {"unsupported", e->meta.unsupported}};
  }
  return out;
}

std::string ModelHost::MetricsText(const std::string& replica) const {
  std::string out;
  size_t loaded = Loaded().size();
  absl::MutexLock lock(&metrics_->mu);
  for (const auto& [model, m] : metrics_->models) {
    std::string labels = absl::StrCat("model=\"", model, "\",replica=\"", replica, "\"");
    absl::StrAppend(&out, "lumen_model_requests_total{", labels, "} ", m.requests, "\n");
    absl::StrAppend(&out, "lumen_model_failures_total{", labels, "} ", m.failures, "\n");
    m.batch.Write(&out, "lumen_model_batch_size", labels);
    m.queue.Write(&out, "lumen_model_queue_seconds", labels);
    m.compute.Write(&out, "lumen_model_compute_seconds", labels);
  }
  absl::StrAppend(&out, "lumen_model_loaded{deployment=\"", options_.deployment, "\",replica=\"",
                  replica, "\"} ", loaded, "\n");
  return out;
}

}  // namespace lumen::models
