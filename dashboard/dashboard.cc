#include "dashboard/dashboard.h"

#include <atomic>
#include <cmath>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/event_loop.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "dashboard/assets.h"
#include "dashboard/parse.h"
#include "lumen/serve.h"
#include "serve/client.h"
#include "serve/http_client.h"
#include "serve/http_server.h"
#include "serve/json_util.h"
#include "serve/manager.h"
#include "serve/route_table.h"
#include "state/state_api.h"

namespace lumen::dashboard {
namespace {

using serve::HttpServer;
using serve::Request;
using serve::Response;
using state::ClusterState;

constexpr char kSessionCookie[] = "lumen_session";
constexpr char kCsrfHeader[] = "x-lumen-csrf";
constexpr int64_t kSessionMs = 12 * 3600 * 1000;
constexpr size_t kMaxSessions = 1024;
constexpr int kMaxInFlight = 64;
constexpr int kMaxLimit = 10'000;
constexpr size_t kServeWindow = 6;        // samples the serve rates are taken over
constexpr int64_t kMaxQueuedMs = 20'000;  // an API call waiting longer is not run

int HttpCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

Response Fail(const absl::Status& s) {
  return Response::Error(HttpCode(s), std::string(s.message()));
}

// Headers every answer carries: no caching of cluster data, no framing,
// no guessing of types.
void Harden(Response& r) {
  r.headers["cache-control"] = "no-store";
  r.headers["x-content-type-options"] = "nosniff";
  r.headers["x-frame-options"] = "DENY";
  r.headers["referrer-policy"] = "no-referrer";
}

Response Page(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.headers["content-type"] = "text/html; charset=utf-8";
  r.headers["content-security-policy"] =
      "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
      "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'";
  r.body = std::move(body);
  return r;
}

// A Ray JobDetails record.
Json RayJob(const proto::JobSubmission& job) {
  Json env = Json::object(), metadata = Json::object();
  for (const auto& [k, v] : job.env()) env[k] = v;
  for (const auto& [k, v] : job.metadata()) metadata[k] = v;
  bool ended = state::JobEnded(job);
  return {{"type", "SUBMISSION"},
          {"job_id", job.submission_id()},
          {"submission_id", job.submission_id()},
          {"status", proto::JobSubmission::Status_Name(job.status())},
          {"entrypoint", state::Entrypoint(job)},
          {"message", job.message()},
          {"submit_time", job.submit_time_ms()},
          {"start_time", job.start_time_ms()},
          {"end_time", ended ? Json(job.end_time_ms()) : Json()},
          {"driver_exit_code", ended ? Json(job.exit_code()) : Json()},
          {"driver_pid", job.driver_pid()},
          {"driver_node_id", NodeId::FromBinary(job.node_id()).Hex()},
          {"node_id", NodeId::FromBinary(job.node_id()).Hex()},
          {"metadata", metadata},
          {"runtime_env", {{"env_vars", env}}}};
}

// The Jobs API's submit body as a request; INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<proto::SubmitJobRequest> SubmitRequest(const Request& request) {
  auto body = request.JsonBody();
  if (!body.ok()) return body.status();
  if (!body->is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  proto::SubmitJobRequest req;
  proto::JobSubmission* job = req.mutable_job();
  for (const auto& [key, value] : body->items()) {
    if (key == "entrypoint") {
      if (!value.is_string()) return absl::InvalidArgumentError("'entrypoint' must be a string");
      std::vector<std::string> argv = EntrypointArgv(value.get<std::string>());
      if (argv.empty()) {
        return absl::InvalidArgumentError(
            "'entrypoint' has no command, or a quote that does not close");
      }
      for (auto& a : argv) job->add_argv(std::move(a));
      job->set_entrypoint(value.get<std::string>());
    } else if (key == "submission_id" || key == "job_id") {
      if (value.is_null()) continue;
      if (!value.is_string()) return absl::InvalidArgumentError("'" + key + "' must be a string");
      job->set_submission_id(value.get<std::string>());
    } else if (key == "metadata") {
      if (value.is_null()) continue;
      if (!value.is_object()) return absl::InvalidArgumentError("'metadata' must be an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) {
          return absl::InvalidArgumentError("metadata '" + k + "' must be a string");
        }
        (*job->mutable_metadata())[k] = v.get<std::string>();
      }
    } else if (key == "runtime_env") {
      if (value.is_null()) continue;
      if (!value.is_object()) return absl::InvalidArgumentError("'runtime_env' must be an object");
      for (const auto& [field, v] : value.items()) {
        if (field != "env_vars") {
          return absl::InvalidArgumentError(
              "runtime_env '" + field +
              "' is not supported: lumen takes env_vars here; ship code with `lumen job submit "
              "--code LIB.so`");
        }
        if (!v.is_object()) return absl::InvalidArgumentError("'env_vars' must be an object");
        for (const auto& [k, e] : v.items()) {
          if (!e.is_string()) {
            return absl::InvalidArgumentError("env_vars '" + k + "' must be a string");
          }
          (*job->mutable_env())[k] = e.get<std::string>();
        }
      }
    } else if (key.rfind("entrypoint_", 0) == 0) {
      // entrypoint_num_cpus and the like: Ray reserves them for the
      // driver; lumen's drivers take no resources. Zero or null only.
      if (!value.is_null() && !(value.is_number() && value.get<double>() == 0) &&
          !(value.is_object() && value.empty())) {
        return absl::InvalidArgumentError("'" + key +
                                          "' is not supported: drivers hold no resources here");
      }
    } else {
      return absl::InvalidArgumentError("unknown field '" + key +
                                        "': use entrypoint, submission_id, runtime_env "
                                        "(env_vars) and metadata");
    }
  }
  if (job->argv_size() == 0) return absl::InvalidArgumentError("say what to run: 'entrypoint'");
  return req;
}

struct Sample {
  Json overview;  // /api/cluster without its history
  Json serve;     // /api/serve
  Json point;     // one history point
};

}  // namespace

struct Dashboard::Impl {
  explicit Impl(DashboardOptions o) : options(std::move(o)), sampler("dashboard_sampler") {}

  DashboardOptions options;
  std::unique_ptr<HttpServer> server;
  std::vector<std::unique_ptr<EventLoop>> loops;
  std::vector<std::unique_ptr<ClusterState>> states;  // one per loop
  std::atomic<uint64_t> next{0};
  std::atomic<int> in_flight{0};

  EventLoop sampler;
  std::unique_ptr<ClusterState> sampler_state;
  std::unique_ptr<PeriodicTimer> sample_timer;
  // Sampler thread only.
  int64_t last_task_total = -1;
  int64_t last_sample_ms = 0;
  // Each sample's counters, by proxy address.
  std::deque<std::pair<int64_t, std::map<std::string, std::map<ServeKey, ServeCounters>>>>
      serve_window;

  absl::Mutex mu;
  Json overview ABSL_GUARDED_BY(mu);
  Json serve_status ABSL_GUARDED_BY(mu);
  std::deque<Json> history ABSL_GUARDED_BY(mu);
  struct Session {
    std::string csrf;
    int64_t expires_ms = 0;
  };
  std::map<std::string, Session> sessions ABSL_GUARDED_BY(mu);

  // ---- authentication ----
  struct Caller {
    bool ok = false;
    bool cookie = false;  // by session cookie (else by token)
    std::string session;
    std::string why;
  };

  Caller Identify(const Request& r) {
    Caller c;
    std::string presented = PresentedToken(r.Header("x-lumen-token"), r.Header("authorization"));
    if (!presented.empty()) {
      c.ok = SameSecret(presented, options.token);
      if (!c.ok) c.why = "wrong cluster token";
      return c;
    }
    std::string session = CookieValue(r.Header("cookie"), kSessionCookie);
    if (!session.empty()) {
      absl::MutexLock lock(&mu);
      auto it = sessions.find(session);
      if (it != sessions.end() && it->second.expires_ms > RealClock::Get()->WallMs()) {
        c.ok = c.cookie = true;
        c.session = session;
        return c;
      }
      c.why = "the session has ended: log in again with the cluster token";
      return c;
    }
    c.why =
        "log in with the cluster token (POST /api/login), or send 'Authorization: Bearer TOKEN' "
        "(`lumen start --head` printed where the token is)";
    return c;
  }

  // A cookie's unsafe request must carry the session's CSRF value, and
  // come from this origin when the browser says where it comes from.
  std::string CrossSiteRefusal(const Request& r, const Caller& c) {
    if (!c.cookie || r.method == "GET" || r.method == "HEAD") return "";
    std::string origin = r.Header("origin");
    if (!origin.empty() && origin != "http://" + r.Header("host") &&
        origin != "https://" + r.Header("host")) {
      return "a cross-site request (Origin " + origin + ") is refused";
    }
    bool ok = false;
    {
      absl::MutexLock lock(&mu);
      auto it = sessions.find(c.session);
      ok = it != sessions.end() && !it->second.csrf.empty() &&
           SameSecret(r.Header(kCsrfHeader), it->second.csrf);
    }
    if (!ok) {
      return "missing or wrong X-Lumen-CSRF header (the page sends it; scripts use the token)";
    }
    return "";
  }

  static bool IsPublic(const Request& r) {
    return r.path == "/" || r.path == "/index.html" || r.path == "/favicon.ico" ||
           (r.path == "/api/login" && r.method == "POST") ||
           (r.path == "/api/logout" && r.method == "POST");
  }

  // On the I/O thread, before a body is read.
  std::optional<Response> CheckHeaders(const Request& r) {
    if (IsPublic(r)) return std::nullopt;
    Caller c = Identify(r);
    Response refused;
    if (!c.ok) {
      refused = Response::Error(401, c.why);
      refused.headers["www-authenticate"] = "Bearer realm=\"lumen\"";
    } else if (std::string why = CrossSiteRefusal(r, c); !why.empty()) {
      refused = Response::Error(403, why);
    } else {
      return std::nullopt;
    }
    Harden(refused);
    return refused;
  }

  Response Login(const Request& r) {
    auto body = r.JsonBody();
    if (!body.ok() || !body->is_object() || !body->contains("token") ||
        !(*body)["token"].is_string()) {
      return Response::Error(400, "send {\"token\": \"CLUSTER TOKEN\"}");
    }
    if (!SameSecret((*body)["token"].get<std::string>(), options.token)) {
      return Response::Error(401, "wrong cluster token");
    }
    std::string id = RandomHex(32), csrf = RandomHex(32);
    int64_t now = RealClock::Get()->WallMs();
    {
      absl::MutexLock lock(&mu);
      for (auto it = sessions.begin(); it != sessions.end();) {
        it = it->second.expires_ms <= now ? sessions.erase(it) : std::next(it);
      }
      if (sessions.size() >= kMaxSessions) {
        auto oldest = sessions.begin();
        for (auto it = sessions.begin(); it != sessions.end(); ++it) {
          if (it->second.expires_ms < oldest->second.expires_ms) oldest = it;
        }
        sessions.erase(oldest);
      }
      sessions[id] = {csrf, now + kSessionMs};
    }
    Response ok = Response::FromJson({{"csrf", csrf}});
    ok.headers["set-cookie"] =
        std::string(kSessionCookie) + "=" + id +
        "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(kSessionMs / 1000);
    return ok;
  }

  Response Logout(const Request& r) {
    std::string session = CookieValue(r.Header("cookie"), kSessionCookie);
    {
      absl::MutexLock lock(&mu);
      sessions.erase(session);
    }
    Response ok = Response::FromJson({{"logged_out", true}});
    ok.headers["set-cookie"] =
        std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
    return ok;
  }

  // The page, with the session's CSRF value in it; the token form without one.
  Response Index(const Request& r) {
    Caller c = Identify(r);
    if (!c.ok || !c.cookie) return Page(std::string(Asset("login.html")), 401);
    std::string csrf;
    {
      absl::MutexLock lock(&mu);
      auto it = sessions.find(c.session);
      if (it == sessions.end()) return Page(std::string(Asset("login.html")), 401);
      csrf = it->second.csrf;
    }
    std::string page(Asset("index.html"));
    static constexpr std::string_view kSlot = "{{CSRF}}";
    if (size_t at = page.find(kSlot); at != std::string::npos) page.replace(at, kSlot.size(), csrf);
    return Page(std::move(page));
  }

  // ---- the handler ----
  void Handle(Request r, HttpServer::Reply reply) {
    auto done = [reply](Response resp) {
      Harden(resp);
      reply(std::move(resp));
    };
    // On the I/O thread: nothing may escape it.
    std::optional<Response> now;
    try {
      now = Answer(r);
    } catch (const std::exception& e) {
      now = Response::Error(500, std::string("internal error: ") + e.what());
    }
    if (now) return done(std::move(*now));
    // The rest calls the cluster: off the I/O thread, bounded in number and
    // in how long one may wait for its turn (its caller has given up then).
    if (in_flight.fetch_add(1) >= kMaxInFlight) {
      in_flight.fetch_sub(1);
      Response busy = Response::Error(503, "the dashboard is busy: try again");
      busy.headers["retry-after"] = "1";
      return done(std::move(busy));
    }
    size_t i = next.fetch_add(1) % loops.size();
    int64_t queued_ms = RealClock::Get()->NowMs();
    loops[i]->Post("dashboard.api", [this, i, queued_ms, r = std::move(r), done]() mutable {
      Response resp;
      if (RealClock::Get()->NowMs() - queued_ms > kMaxQueuedMs) {
        resp = Response::Error(503, "the cluster is slow to answer: try again");
      } else {
        try {
          resp = Api(*states[i], r);
        } catch (const std::exception& e) {  // a bug here must not take the thread down
          resp = Response::Error(500, std::string("internal error: ") + e.what());
        }
      }
      in_flight.fetch_sub(1);
      done(std::move(resp));
    });
  }

  // What is answered at once, without calling the cluster; nullopt for the rest.
  std::optional<Response> Answer(const Request& r) {
    if (r.path == "/" || r.path == "/index.html") return Index(r);
    if (r.path == "/api/login") return Login(r);
    if (r.path == "/api/logout") return Logout(r);
    if (r.path == "/favicon.ico") return Response::Text("", 404);
    if (r.path == "/app.js" || r.path == "/app.css") {
      Response asset = Response::Text(std::string(Asset(r.path.substr(1))));
      asset.headers["content-type"] =
          r.path == "/app.js" ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8";
      return asset;
    }
    if (r.path.rfind("/api/", 0) != 0) return Response::Error(404, "no page " + r.path);
    if (r.path == "/api/version") {
      return Response::FromJson({{"version", "1"},
                                 {"lumen_version", LUMEN_VERSION_STRING},
                                 {"ray_version", std::string("lumen-") + LUMEN_VERSION_STRING}});
    }
    if (r.path == "/api/cluster") return Overview();
    if (r.path == "/api/serve") {
      Json copy;
      {
        absl::MutexLock lock(&mu);
        copy = serve_status;
      }
      if (copy.is_null()) copy = {{"running", false}, {"message", "not sampled yet"}};
      return Response::FromJson(copy);
    }
    return std::nullopt;
  }

  Response Overview() {
    Json out;
    {
      absl::MutexLock lock(&mu);
      out = overview;
      out["history"] = Json::array();
      for (const auto& p : history) out["history"].push_back(p);
    }
    if (!out.contains("now_ms")) return Response::Error(503, "the first sample is not taken yet");
    return Response::FromJson(out, out.contains("error") ? 503 : 200);
  }

  static std::vector<std::string> Segments(const std::string& path) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      if (slash > start) out.push_back(path.substr(start, slash - start));
      start = slash + 1;
    }
    return out;
  }

  Response Api(ClusterState& st, const Request& r) {
    std::vector<std::string> seg = Segments(r.path);  // "api", ...
    if (seg.size() >= 2 && seg[1] == "jobs") return Jobs(st, r, seg);
    if (seg.size() < 3 || seg[1] != "v0") return Response::Error(404, "no API " + r.path);
    const std::string& kind = seg[2];
    if (kind == "logs" && seg.size() == 3 && r.method == "GET") return Logs(st, r);
    if (kind == "summary" && seg.size() == 4 && r.method == "GET") {
      std::string note;
      auto got = st.Summary(seg[3], Filters(r), &note);
      if (!got.ok()) return Fail(got.status());
      return Response::FromJson(*got);
    }
    if (kind == "actors" && seg.size() == 5 && seg[4] == "kill") {
      if (r.method != "POST") return Response::Error(405, "kill an actor with POST");
      auto got = st.KillActor(seg[3]);
      if (!got.ok()) return Fail(got.status());
      return Response::FromJson({{"killed", true}, {"actor", *got}});
    }
    if (r.method != "GET") return Response::Error(405, r.method + " is not allowed here");
    if (seg.size() == 4) {
      std::string one = kind == "actors"  ? "actor"
                        : kind == "tasks" ? "task"
                        : kind == "nodes" ? "node"
                                          : "";
      if (one.empty()) return Response::Error(404, "get one of actors, tasks or nodes by id");
      auto got = st.Get(one, seg[3]);
      if (!got.ok()) return Fail(got.status());
      return Response::FromJson(*got);
    }
    if (seg.size() != 3) return Response::Error(404, "no API " + r.path);
    int limit = 100;
    if (auto it = r.query.find("limit"); it != r.query.end()) {
      if (!absl::SimpleAtoi(it->second, &limit) || limit < 1 || limit > kMaxLimit) {
        return Response::Error(400, "limit must be 1 to " + std::to_string(kMaxLimit));
      }
    }
    auto got = st.List(kind == "placement_groups" ? "placement-groups" : kind, Filters(r), limit);
    if (!got.ok()) return Fail(got.status());
    return Response::FromJson({{"rows", got->rows}, {"note", got->note}});
  }

  // Filters: `filter=KEY=VALUE`, or any query key but limit as KEY=VALUE.
  static std::vector<std::string> Filters(const Request& r) {
    std::vector<std::string> out;
    for (const auto& [k, v] : r.query) {
      if (k == "limit") continue;
      out.push_back(k == "filter" ? v : k + "=" + v);
    }
    return out;
  }

  Response Logs(ClusterState& st, const Request& r) {
    static const std::vector<std::pair<std::string, ClusterState::LogOf>> kWhose = {
        {"worker", ClusterState::LogOf::kWorker},
        {"task", ClusterState::LogOf::kTask},
        {"actor", ClusterState::LogOf::kActor},
        {"node", ClusterState::LogOf::kNode}};
    int tail = 1000;
    int64_t offset = -1;
    if (auto it = r.query.find("tail"); it != r.query.end()) {
      if (!absl::SimpleAtoi(it->second, &tail) || tail < 1 || tail > 100'000) {
        return Response::Error(400, "tail must be 1 to 100000 lines");
      }
    }
    if (auto it = r.query.find("offset"); it != r.query.end()) {
      if (!absl::SimpleAtoi(it->second, &offset) || offset < 0) {
        return Response::Error(400, "offset must be a byte offset (0 or more)");
      }
    }
    if (auto it = r.query.find("job"); it != r.query.end()) {
      auto job = st.FindJob(it->second);
      if (!job.ok()) return Fail(job.status());
      auto got = st.ReadJobLogs(*job, offset < 0 ? -(int64_t{1} << 20) : offset);
      if (!got.ok()) return Fail(got.status());
      return Response::FromJson(
          {{"data", offset < 0 ? state::LastLines(got->data(), tail) : got->data()},
           {"next_offset", got->next_offset()},
           {"path", job->log_path()},
           {"running", !got->ended()}});
    }
    for (const auto& [key, of] : kWhose) {
      auto it = r.query.find(key);
      if (it == r.query.end()) continue;
      auto place = st.LocateLog(of, it->second, key);
      if (!place.ok()) return Fail(place.status());
      bool err = r.query.count("err") && r.query.at("err") != "0";
      auto got = st.ReadLog(*place, err, offset < 0 ? -(int64_t{1} << 20) : offset);
      if (!got.ok()) return Fail(got.status());
      return Response::FromJson(
          {{"data", offset < 0 ? state::LastLines(got->data(), tail) : got->data()},
           {"next_offset", got->next_offset()},
           {"path", got->path()},
           {"running", got->running()}});
    }
    return Response::Error(400, "say whose log: worker, task, actor, node or job=ID");
  }

  Response Jobs(ClusterState& st, const Request& r, const std::vector<std::string>& seg) {
    if (seg.size() == 2) {
      if (r.method == "GET") {
        auto jobs = st.Jobs();
        if (!jobs.ok()) return Fail(jobs.status());
        Json out = Json::array();
        for (const auto& j : *jobs) out.push_back(RayJob(j));
        return Response::FromJson(out);
      }
      if (r.method == "POST") {
        auto req = SubmitRequest(r);
        if (!req.ok()) return Fail(req.status());
        auto id = st.SubmitJob(*req);
        if (!id.ok()) {
          // A command that is not there is the request's fault.
          return Response::Error(absl::IsNotFound(id.status()) ? 400 : HttpCode(id.status()),
                                 std::string(id.status().message()));
        }
        return Response::FromJson({{"job_id", *id}, {"submission_id", *id}});
      }
      return Response::Error(405, "list jobs with GET, submit one with POST");
    }
    const std::string& id = seg[2];
    if (seg.size() == 3 && r.method == "GET") {
      auto job = st.FindJob(id);
      if (!job.ok()) return Fail(job.status());
      return Response::FromJson(RayJob(*job));
    }
    if (seg.size() == 3 && r.method == "DELETE") {
      if (absl::Status s = st.DeleteJob(id); !s.ok()) return Fail(s);
      return Response::FromJson({{"deleted", true}});
    }
    if (seg.size() == 4 && seg[3] == "stop" && r.method == "POST") {
      auto stopped = st.StopJob(id);
      if (!stopped.ok()) return Fail(stopped.status());
      return Response::FromJson({{"stopped", *stopped}});
    }
    if (seg.size() == 4 && seg[3] == "logs" && r.method == "GET") {
      auto job = st.FindJob(id);
      if (!job.ok()) return Fail(job.status());
      auto logs = st.JobLog(*job, size_t{16} << 20);  // the whole log, up to 16 MiB
      if (!logs.ok()) return Fail(logs.status());
      return Response::FromJson({{"logs", *logs}});
    }
    return Response::Error(404, "no jobs API " + r.method + " " + r.path);
  }

  // ---- sampling, on the sampler loop ----
  // What the cluster or serve answered is outside input too: a surprise in
  // it costs one sample, never the process.
  // The overview is published first; serve's figures (slower: its admin
  // API and every proxy) after, so neither holds up or spoils the other.
  void SampleSafely() {
    std::vector<proto::NodeInfo> nodes;
    try {
      TakeSample(&nodes);
    } catch (const std::exception& e) {
      LUMEN_LOG_WARN("dashboard: a sample failed: {}", e.what());
    }
    Json serve;
    try {
      serve = SampleServe(*sampler_state, RealClock::Get()->WallMs(), nodes);
    } catch (const std::exception& e) {
      serve = {{"running", false},
               {"message", std::string("serve's status did not read: ") + e.what()}};
    }
    absl::MutexLock lock(&mu);
    serve_status = std::move(serve);
  }

  void TakeSample(std::vector<proto::NodeInfo>* nodes_out) {
    ClusterState& st = *sampler_state;
    int64_t now = RealClock::Get()->WallMs();
    Json ov = {{"gcs", options.gcs_address}, {"now_ms", now}};
    Json point = {{"t", now}};
    auto nodes = st.Nodes();
    if (!nodes.ok()) {
      ov["error"] = std::string(nodes.status().message());
      absl::MutexLock lock(&mu);
      overview = ov;
      return;
    }
    *nodes_out = *nodes;
    int alive = 0, dead = 0;
    std::map<std::string, std::pair<double, double>> res;  // name -> total, used
    std::map<std::string, proto::NodeStats> machines;      // by hostname: one each
    int64_t store_used = 0, store_capacity = 0, objects = 0;
    for (const auto& n : *nodes) {
      if (n.state() != proto::NodeInfo::ALIVE) {
        ++dead;
        continue;
      }
      ++alive;
      machines[n.hostname().empty() ? n.node_id() : n.hostname()] = n.stats();
      store_used += n.stats().object_store_used();
      store_capacity += n.stats().object_store_capacity();
      objects += n.stats().num_objects();
      for (const auto& [k, v] : n.resources_total()) {
        if (k.find('_') != std::string::npos && k.rfind("object_store", 0) != 0) continue;
        auto avail = n.resources_available().find(k);
        res[k].first += v;
        res[k].second += v - (avail == n.resources_available().end() ? v : avail->second);
      }
    }
    ov["nodes"] = {{"alive", alive}, {"dead", dead}};
    ov["resources"] = Json::object();
    for (const auto& [k, tu] : res) ov["resources"][k] = {{"total", tu.first}, {"used", tu.second}};
    auto figure = [&](const char* name, const char* key, bool used) {
      auto it = res.find(name);
      point[key] = it == res.end() ? 0.0 : used ? it->second.second : it->second.first;
    };
    figure("CPU", "cpu_used", true);
    figure("CPU", "cpu_total", false);
    figure("GPU", "gpu_used", true);
    figure("GPU", "gpu_total", false);
    double busy = 0, cpus = 0, mem_used = 0, mem_total = 0;
    for (const auto& [host, s] : machines) {
      busy += s.host_cpu_percent() / 100 * s.host_num_cpus();
      cpus += s.host_num_cpus();
      mem_used += static_cast<double>(s.host_mem_used_bytes());
      mem_total += static_cast<double>(s.host_mem_total_bytes());
    }
    ov["host"] = {{"machines", machines.size()},
                  {"cpus", cpus},
                  {"cpu_busy", busy},
                  {"cpu_percent", cpus > 0 ? 100 * busy / cpus : 0.0},
                  {"mem_used", mem_used},
                  {"mem_total", mem_total}};
    point["cpu_busy"] = busy;
    point["mem_used"] = mem_used;
    point["mem_total"] = mem_total;
    ov["object_store"] = {
        {"objects", objects}, {"bytes", store_used}, {"capacity", store_capacity}};
    point["store_bytes"] = store_used;
    point["store_capacity"] = store_capacity;

    proto::ListTasksRequest tq;
    tq.set_summary(true);
    tq.set_limit(1);
    Json by_state = Json::object();
    double per_s = 0;
    if (auto tasks = st.Tasks(tq); tasks.ok()) {
      for (const auto& s : tasks->summary()) {
        for (const auto& [state, n] : s.by_state()) {
          by_state[state] = by_state.value(state, int64_t{0}) + n;
        }
      }
      int64_t total = tasks->kept() + tasks->dropped();
      if (last_task_total >= 0 && now > last_sample_ms) {
        per_s = std::max<int64_t>(0, total - last_task_total) * 1000.0 / (now - last_sample_ms);
      }
      last_task_total = total;
    }
    ov["tasks"] = {{"by_state", by_state}, {"per_s", per_s}};
    point["tasks_per_s"] = per_s;

    Json actors = Json::object();
    if (auto got = st.Summary("actors", {}, nullptr); got.ok()) {
      for (const auto& [cls, states] : got->items()) {
        for (const auto& [s, n] : states.items()) {
          actors[s] = actors.value(s, int64_t{0}) + n.get<int64_t>();
        }
      }
    }
    ov["actors"] = {{"by_state", actors}};
    Json jobs = Json::object();
    if (auto got = st.Jobs(); got.ok()) {
      for (const auto& j : *got) {
        std::string s = proto::JobSubmission::Status_Name(j.status());
        jobs[s] = jobs.value(s, 0) + 1;
      }
    }
    ov["jobs"] = {{"by_status", jobs}};
    last_sample_ms = now;
    absl::MutexLock lock(&mu);
    overview = std::move(ov);
    history.push_back(std::move(point));
    while (history.size() > options.history) history.pop_front();
  }

  // Where to scrape each proxy from here (the head): its own address when
  // it listens on every interface; none when it listens on another
  // machine's loopback. Each address once.
  static std::vector<std::pair<std::string, int>> ProxyAddresses(
      const Json& proxies, const std::vector<proto::NodeInfo>& nodes) {
    std::map<std::string, std::string> node_host;
    std::string head_host = "127.0.0.1";
    for (const auto& n : nodes) {
      node_host[state::Hex(n.node_id())] = n.address().host();
      if (n.is_head()) head_host = n.address().host();
    }
    auto loopback = [](const std::string& h) {
      return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
    };
    std::set<std::pair<std::string, int>> seen;
    std::vector<std::pair<std::string, int>> out;
    if (!proxies.is_array()) return out;
    for (const auto& p : proxies) {
      if (!p.is_object() || !p.contains("http") || !p["http"].is_string()) continue;
      std::string host;
      int port = 0;
      if (!rpc::SplitHostPort(p["http"].get<std::string>(), &host, &port).ok()) continue;
      std::string node =
          p.contains("node") && p["node"].is_string() ? p["node"].get<std::string>() : "";
      std::string where = node_host.count(node) ? node_host[node] : head_host;
      if (host.empty() || host == "0.0.0.0" || host == "::") {
        host = where;
      } else if (loopback(host) && where != head_host && !loopback(where)) {
        continue;  // another machine's loopback: not reachable from here
      }
      if (seen.insert({host, port}).second) out.emplace_back(host, port);
    }
    return out;
  }

  // `now` minus `then` for one proxy's counters; a counter that went down
  // means the proxy restarted, and then `now` is all there is.
  static ServeCounters Delta(const ServeCounters& now, const ServeCounters* then) {
    if (then == nullptr || now.requests < then->requests) return now;
    ServeCounters d;
    d.requests = now.requests - then->requests;
    d.errors = std::max(0.0, now.errors - then->errors);
    d.latency_sum_s = std::max(0.0, now.latency_sum_s - then->latency_sum_s);
    d.latency_count = std::max(0.0, now.latency_count - then->latency_count);
    for (const auto& [le, n] : now.buckets) {
      auto it = then->buckets.find(le);
      d.buckets[le] = std::max(0.0, n - (it == then->buckets.end() ? 0.0 : it->second));
    }
    return d;
  }

  Json SampleServe(ClusterState& st, int64_t now, const std::vector<proto::NodeInfo>& nodes) {
    proto::KvGetRequest req;
    req.set_ns(serve::kServeKvNamespace);
    req.set_key(serve::kAdminKey);
    auto admin = rpc::CallSync<proto::KvGetReply>(
        [&](auto cb) { st.gcs()->KvGet(req, cb, {.timeout_ms = 5'000}); });
    if (!admin.ok())
      return {{"running", false}, {"message", std::string(admin.status().message())}};
    if (!admin->found() || admin->value().empty()) {
      serve_window.clear();
      return {
          {"running", false},
          {"message", "serve does not run in this cluster (`lumen serve deploy FILE` starts it)"}};
    }
    auto status = serve::AdminClient(admin->value(), options.token).Status();
    if (!status.ok()) {
      return {{"running", false},
              {"message",
               "serve's admin API did not answer: " + std::string(status.status().message())}};
    }
    Json out = *status;
    out["running"] = true;
    // Each proxy's counters, kept apart: one that misses a scrape or
    // restarts must not look like a burst or a drop of the others' traffic.
    std::map<std::string, std::map<ServeKey, ServeCounters>> by_proxy;
    for (const auto& [host, port] : ProxyAddresses(out.value("proxies", Json::array()), nodes)) {
      auto got = serve::HttpCall(host, port, "GET", "/metrics", "",
                                 {{"authorization", "Bearer " + options.token}}, 1'500);
      if (got.ok() && got->status == 200) {
        AddServeMetrics(got->body, &by_proxy[rpc::JoinHostPort(host, port)]);
      }
    }
    serve_window.emplace_back(now, std::move(by_proxy));
    while (serve_window.size() > kServeWindow) serve_window.pop_front();
    const auto& [t0, first] = serve_window.front();
    const auto& last = serve_window.back().second;
    double seconds = (now - t0) / 1000.0;
    // Per deployment: the sum of each proxy's change over the window, for
    // proxies seen at both ends of it.
    std::map<ServeKey, ServeCounters> delta;
    std::map<ServeKey, ServeCounters> totals;
    for (const auto& [proxy, series] : last) {
      auto before = first.find(proxy);
      for (const auto& [key, c] : series) {
        ServeCounters& t = totals[key];
        t.requests += c.requests;
        t.errors += c.errors;
        if (before == first.end() || seconds <= 0) continue;
        auto then = before->second.find(key);
        ServeCounters d = Delta(c, then == before->second.end() ? nullptr : &then->second);
        ServeCounters& sum = delta[key];
        sum.requests += d.requests;
        sum.errors += d.errors;
        for (const auto& [le, n] : d.buckets) sum.buckets[le] += n;
      }
    }
    if (!out.contains("applications") || !out["applications"].is_object()) return out;
    for (auto& [app, a] : out["applications"].items()) {
      if (!a.is_object() || !a.contains("deployments") || !a["deployments"].is_object()) continue;
      for (auto& [name, d] : a["deployments"].items()) {
        if (!d.is_object()) continue;
        auto it = delta.find({app, name});
        bool have = it != delta.end() && seconds > 0;
        d["requests_per_s"] = have ? it->second.requests / seconds : 0.0;
        d["errors_per_s"] = have ? it->second.errors / seconds : 0.0;
        d["p50_ms"] = have ? HistogramQuantile(it->second.buckets, 0.5) * 1000 : 0.0;
        d["p99_ms"] = have ? HistogramQuantile(it->second.buckets, 0.99) * 1000 : 0.0;
        if (auto t = totals.find({app, name}); t != totals.end()) {
          d["requests_total"] = t->second.requests;
          d["errors_total"] = t->second.errors;
        }
      }
    }
    return out;
  }
};

Dashboard::Dashboard(DashboardOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Dashboard::~Dashboard() { Stop(); }

int Dashboard::port() const { return impl_->server ? impl_->server->port() : 0; }

absl::Status Dashboard::Start() {
  Impl* d = impl_.get();
  if (d->options.token.empty()) {
    return absl::InvalidArgumentError("the dashboard needs the cluster token");
  }
  for (int i = 0; i < std::max(1, d->options.api_threads); ++i) {
    d->loops.push_back(std::make_unique<EventLoop>("dashboard_api"));
    d->states.push_back(std::make_unique<ClusterState>(d->options.gcs_address, d->options.token));
    d->loops.back()->Start();
  }
  HttpServer::Options http;
  http.host = d->options.host;
  http.port = d->options.port;
  http.threads = 2;
  http.max_connections = 256;
  http.max_body_bytes = 1 << 20;
  http.body_budget_bytes = 16 << 20;
  http.on_headers = [d](const Request& head) { return d->CheckHeaders(head); };
  d->server = std::make_unique<HttpServer>(
      std::move(http), [d](Request r, HttpServer::Reply reply) { d->Handle(std::move(r), reply); });
  if (absl::Status s = d->server->Start(); !s.ok()) return s;
  d->sampler_state =
      std::make_unique<ClusterState>(d->options.gcs_address, d->options.token, 5'000);
  d->sampler.Start();
  d->sampler.Post("dashboard.first_sample", [d] {
    d->SampleSafely();
    d->sample_timer =
        d->sampler.RunEvery("dashboard.sample", std::chrono::milliseconds(d->options.sample_ms),
                            [d] { d->SampleSafely(); });
  });
  return absl::OkStatus();
}

void Dashboard::Stop() {
  Impl* d = impl_.get();
  if (d->server) d->server->Stop();
  d->sampler.Stop();
  d->sample_timer.reset();
  for (auto& loop : d->loops) loop->Stop();
}

}  // namespace lumen::dashboard
