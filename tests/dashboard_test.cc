// The dashboard against a real three-node cluster with serve: its JSON API
// and Ray-shaped Jobs API over real HTTP (authentication, CSRF, bad input),
// then the page itself in Debian's headless Chromium, driven through
// chromedriver's WebDriver protocol, checking what a person would see.
// Screenshots go to $LUMEN_TEST_OUTPUT (default: dashboard-screenshots/ in
// the test's working directory).
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "dashboard/dashboard.h"
#include "nlohmann/json.hpp"
#include "serve_fixture.h"
#include "test_tasks.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using Json = nlohmann::json;

class DashboardTest : public ServeFixture {
 protected:
  static void SetUpTestSuite() {
    ServeFixture::SetUpTestSuite();
    if (cluster_ == nullptr) return;
    absl::Status added = cluster_->AddNode({{{"CPU", 2}}});
    ASSERT_TRUE(added.ok()) << added;
    dashboard::DashboardOptions o;
    o.gcs_address = cluster_->gcs_address();
    o.token = cluster_->token();
    o.port = 0;
    o.sample_ms = 1'000;
    board_ = new dashboard::Dashboard(o);
    absl::Status s = board_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete board_;
    board_ = nullptr;
    ServeFixture::TearDownTestSuite();
  }

  static absl::StatusOr<Response> Call(const std::string& method, const std::string& target,
                                       const std::string& body = "",
                                       std::map<std::string, std::string> headers = {}) {
    return HttpCall("127.0.0.1", board_->port(), method, target, body, headers, 30'000);
  }
  // With the token, the answer's JSON (an empty object when there is none,
  // so lookups in it never throw).
  static Json Api(const std::string& method, const std::string& target, int* status,
                  const std::string& body = "") {
    auto r = Call(method, target, body, {{"authorization", "Bearer " + cluster_->token()}});
    if (!r.ok()) {
      *status = -1;
      return Json::object();
    }
    *status = r->status;
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_discarded() ? Json::object() : j;
  }

  static inline dashboard::Dashboard* board_ = nullptr;
};

TEST_F(DashboardTest, NothingWithoutTheToken) {
  auto page = Call("GET", "/");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->status, 401);
  EXPECT_NE(page->body.find("id=\"token\""), std::string::npos);  // the token form
  std::string node = GetRuntimeContext().node.Hex();
  for (const char* target : {"/api/cluster", "/api/v0/nodes", "/api/jobs/", "/api/serve", "/app.js",
                             "/api/v0/logs?node="}) {
    auto r = Call("GET", target);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401) << target;
    EXPECT_EQ(r->body.find(node), std::string::npos) << target;
    r = Call("GET", target, "", {{"authorization", "Bearer not-the-token"}});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << target;
    r = Call("GET", target, "", {{"cookie", "lumen_session=forged"}});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << target;
  }
  // A job submitted without the token is refused before its body is read.
  auto r = Call("POST", "/api/jobs/", R"({"entrypoint": "touch /tmp/lumen-pwned"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  auto login =
      Call("POST", "/api/login", R"({"token": "wrong"})", {{"content-type", "application/json"}});
  ASSERT_TRUE(login.ok());
  EXPECT_EQ(login->status, 401);
  EXPECT_EQ(login->headers.count("set-cookie"), 0u);
  // Hostile login bodies: a clear 400, and the dashboard keeps serving.
  const std::vector<std::string> bodies = {R"({"token": 1e999})",
                                           R"({"token": [1]})",
                                           "{\"token\": \"\xff\"}",
                                           std::string(5000, '['),
                                           "",
                                           "{\"token\""};
  for (const std::string& body : bodies) {
    auto r = Call("POST", "/api/login", body, {{"content-type", "application/json"}});
    ASSERT_TRUE(r.ok()) << body << " " << r.status();
    EXPECT_TRUE(r->status == 400 || r->status == 401) << body << " " << r->status;
  }
  auto still = Call("GET", "/");
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->status, 401);
  // Logging out is a POST.
  EXPECT_EQ(Call("GET", "/api/logout")->status, 401);
}

TEST_F(DashboardTest, SessionsNeedTheCsrfValueToAct) {
  auto login = Call("POST", "/api/login", Json{{"token", cluster_->token()}}.dump(),
                    {{"content-type", "application/json"}});
  ASSERT_TRUE(login.ok());
  ASSERT_EQ(login->status, 200) << login->body;
  std::string cookie = login->headers["set-cookie"];
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  cookie = cookie.substr(0, cookie.find(';'));
  std::string csrf = Json::parse(login->body)["csrf"];

  auto page = Call("GET", "/", "", {{"cookie", cookie}});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find(csrf), std::string::npos);
  EXPECT_EQ(Call("GET", "/api/v0/nodes", "", {{"cookie", cookie}})->status, 200);

  // A POST by cookie alone (what another site could make a browser send).
  auto actor = Actor(test_tasks::Counter::Create).Remote(1);
  ASSERT_TRUE(actor.Ready(60'000).ok());
  std::string kill = "/api/v0/actors/" + actor.ID().Hex() + "/kill";
  EXPECT_EQ(Call("POST", kill, "", {{"cookie", cookie}})->status, 403);
  EXPECT_EQ(Call("POST", kill, "", {{"cookie", cookie}, {"x-lumen-csrf", "nope"}})->status, 403);
  EXPECT_EQ(Call("POST", kill, "",
                 {{"cookie", cookie}, {"x-lumen-csrf", csrf}, {"origin", "http://evil.example"}})
                ->status,
            403);
  int status = 0;
  Json a = Api("GET", "/api/v0/actors/" + actor.ID().Hex(), &status);
  EXPECT_EQ(a["state"], "ALIVE") << a;

  auto killed = Call("POST", kill, "", {{"cookie", cookie}, {"x-lumen-csrf", csrf}});
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->status, 200) << killed->body;
  ASSERT_TRUE(WaitUntil(
      [&] {
        a = Api("GET", "/api/v0/actors/" + actor.ID().Hex(), &status);
        return a.is_object() && a["state"] == "DEAD";
      },
      30'000))
      << a;
  EXPECT_FALSE(a["death_cause"].get<std::string>().empty()) << a;
  EXPECT_GT(a["pid"].get<int>(), 0) << a;
  // Its log is still there, by actor id.
  Json log = Api("GET", "/api/v0/logs?actor=" + actor.ID().Hex() + "&tail=50", &status);
  EXPECT_EQ(status, 200) << log;

  auto out = Call("POST", "/api/logout", "", {{"cookie", cookie}, {"x-lumen-csrf", csrf}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Call("GET", "/api/v0/nodes", "", {{"cookie", cookie}})->status, 401);
}

TEST_F(DashboardTest, StateApiAnswersLikeTheCli) {
  int status = 0;
  Json nodes;
  ASSERT_TRUE(WaitUntil(
      [&] {
        nodes = Api("GET", "/api/v0/nodes?state=ALIVE", &status);
        return status == 200 && nodes["rows"].size() == 3;
      },
      30'000))
      << nodes;
  std::string head = GetRuntimeContext().node.Hex();
  Json one = Api("GET", "/api/v0/nodes/" + head.substr(0, 8), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(one["node_id"], head);

  // Tasks, one of them failing, found again by state.
  ASSERT_TRUE(Get(Task(test_tasks::Add).Remote(1, 2), 60'000).ok());
  Json failed;
  ASSERT_TRUE(WaitUntil(
      [&] {
        failed = Api("GET", "/api/v0/tasks?state=FINISHED&limit=5", &status);
        return status == 200 && !failed["rows"].empty();
      },
      30'000))
      << failed;
  Json summary = Api("GET", "/api/v0/summary/tasks", &status);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(summary.is_object() && !summary.empty()) << summary;
  Json workers = Api("GET", "/api/v0/workers", &status);
  EXPECT_EQ(status, 200);
  EXPECT_FALSE(workers["rows"].empty()) << workers;

  Json overview;
  ASSERT_TRUE(WaitUntil(
      [&] {
        overview = Api("GET", "/api/cluster", &status);
        return status == 200 && overview["nodes"]["alive"] == 3 && overview["history"].size() >= 2;
      },
      30'000))
      << overview;
  EXPECT_GT(overview["resources"]["CPU"]["total"].get<double>(), 0);
  // The machine's own figures, from the node managers' reports.
  EXPECT_GT(overview["host"]["cpus"].get<double>(), 0) << overview["host"];
  EXPECT_GT(overview["host"]["mem_used"].get<double>(), 0) << overview["host"];
  EXPECT_GT(overview["object_store"]["capacity"].get<double>(), 0) << overview["object_store"];

  // Bad input: the right code and a message that says what to do.
  struct Bad {
    std::string target;
    int status;
    std::string says;
  };
  for (const Bad& b : std::vector<Bad>{
           {"/api/v0/bogus", 400, "cannot list 'bogus'"},
           {"/api/v0/actors?colour=red", 400, "cannot filter actors by 'colour'"},
           {"/api/v0/tasks?state=SLEEPY", 400, "no task state 'SLEEPY'"},
           {"/api/v0/tasks?limit=0", 400, "limit"},
           {"/api/v0/tasks?limit=abc", 400, "limit"},
           {"/api/v0/actors/ffffffffffff", 404, "no actor"},
           {"/api/v0/tasks/xyz", 400, "is not"},
           {"/api/v0/logs?worker=zz", 400, "whole worker id"},
           {"/api/v0/logs", 400, "say whose log"},
           {"/api/v0/logs?node=" + head.substr(0, 8) + "&tail=-4", 400, "tail"},
           {"/api/nope", 404, "no API"},
       }) {
    Json got = Api("GET", b.target, &status);
    EXPECT_EQ(status, b.status) << b.target << " " << got;
    EXPECT_NE(got.value("error", "").find(b.says), std::string::npos) << b.target << " " << got;
  }
  // A node manager's own log, and a dead one's message.
  Json log = Api("GET", "/api/v0/logs?node=" + head.substr(0, 8) + "&tail=20", &status);
  EXPECT_EQ(status, 200) << log;
  EXPECT_FALSE(log["data"].get<std::string>().empty());
}

TEST_F(DashboardTest, RayShapedJobsApi) {
  int status = 0;
  Json v = Api("GET", "/api/version", &status);
  EXPECT_EQ(status, 200) << v;

  Json sub = Api("POST", "/api/jobs/", &status,
                 R"({"entrypoint": "sh -c 'echo job says hi; exit 3'", "metadata": {"who": "t"},
                     "runtime_env": {"env_vars": {"A": "1"}}})");
  ASSERT_EQ(status, 200) << sub;
  std::string id = sub["submission_id"];
  Json job;
  ASSERT_TRUE(WaitUntil(
      [&] {
        job = Api("GET", "/api/jobs/" + id, &status);
        return job.value("status", "") == "FAILED";
      },
      30'000))
      << job;
  EXPECT_EQ(job["driver_exit_code"], 3) << job;
  EXPECT_EQ(job["metadata"]["who"], "t");
  EXPECT_EQ(job["runtime_env"]["env_vars"]["A"], "1");
  Json logs = Api("GET", "/api/jobs/" + id + "/logs", &status);
  EXPECT_NE(logs["logs"].get<std::string>().find("job says hi"), std::string::npos) << logs;
  EXPECT_EQ(job["entrypoint"], "sh -c 'echo job says hi; exit 3'") << "the line as given";
  // A long log's tail is its end.
  sub = Api("POST", "/api/jobs/", &status,
            R"({"entrypoint": "sh -c 'seq 1 300000; echo the-very-end'"})");
  ASSERT_EQ(status, 200) << sub;
  std::string long_id = sub["submission_id"];
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Api("GET", "/api/jobs/" + long_id, &status).value("status", "") == "SUCCEEDED";
      },
      30'000));
  Json tail = Api("GET", "/api/v0/logs?job=" + long_id + "&tail=2", &status);
  EXPECT_EQ(status, 200) << tail;
  EXPECT_EQ(tail["data"], "300000\nthe-very-end\n") << tail;
  Json all = Api("GET", "/api/jobs/", &status);
  ASSERT_TRUE(all.is_array());
  bool listed = false;
  for (const auto& j : all) listed = listed || j["submission_id"] == id;
  EXPECT_TRUE(listed) << all;

  // Stop a running one; it cannot be deleted while it runs.
  sub = Api("POST", "/api/jobs/", &status,
            R"({"entrypoint": "sleep 60", "submission_id": "sleepy"})");
  ASSERT_EQ(status, 200) << sub;
  Json again =
      Api("POST", "/api/jobs/", &status, R"({"entrypoint": "sleep 1", "submission_id": "sleepy"})");
  EXPECT_EQ(status, 409) << again;
  ASSERT_TRUE(WaitUntil(
      [&] { return Api("GET", "/api/jobs/sleepy", &status).value("status", "") == "RUNNING"; },
      30'000));
  Json del = Api("DELETE", "/api/jobs/sleepy", &status);
  EXPECT_EQ(status, 409) << del;
  Json stop = Api("POST", "/api/jobs/sleepy/stop", &status);
  EXPECT_EQ(status, 200) << stop;
  EXPECT_EQ(stop["stopped"], true);
  ASSERT_TRUE(WaitUntil(
      [&] { return Api("GET", "/api/jobs/sleepy", &status).value("status", "") == "STOPPED"; },
      30'000));
  del = Api("DELETE", "/api/jobs/sleepy", &status);
  EXPECT_EQ(status, 200) << del;
  Api("GET", "/api/jobs/sleepy", &status);
  EXPECT_EQ(status, 404);

  struct Bad {
    std::string body;
    int status;
    std::string says;
  };
  for (const Bad& b : std::vector<Bad>{
           {R"({"entrypoint": "no-such-command-here --x"})", 400, "not found"},
           {R"({"entrypoint": ""})", 400, "no command"},
           {R"({"entrypoint": "echo 'open"})", 400, "quote"},
           {R"({"entrypoint": 7})", 400, "must be a string"},
           {R"({"submission_id": "x"})", 400, "entrypoint"},
           {R"({"entrypoint": "true", "submission_id": "../../etc"})", 400, "submission id"},
           {R"({"entrypoint": "true", "runtime_env": {"pip": ["x"]}})", 400, "not supported"},
           {R"({"entrypoint": "true", "colour": 1})", 400, "unknown field"},
           {R"({"entrypoint": )", 400, ""},
           {"[1,2]", 400, "object"},
       }) {
    Json got = Api("POST", "/api/jobs/", &status, b.body);
    EXPECT_EQ(status, b.status) << b.body << " " << got;
    EXPECT_NE(got.value("error", "").find(b.says), std::string::npos) << b.body << " " << got;
  }
  Api("GET", "/api/jobs/never-was", &status);
  EXPECT_EQ(status, 404);
  Api("POST", "/api/jobs/never-was/stop", &status);
  EXPECT_EQ(status, 404);
}

// A figure of the echo app's Echo deployment in /api/serve; -1 while absent.
double EchoFigure(const Json& serve, const char* key) {
  const Json* at = &serve;
  for (const char* step : {"applications", "echo", "deployments", "Echo", key}) {
    if (!at->is_object() || !at->contains(step)) return -1;
    at = &(*at)[step];
  }
  return at->is_number() ? at->get<double>() : -1;
}

TEST_F(DashboardTest, ServeFiguresComeFromTheProxies) {
  Deploy(EchoApp());
  std::atomic<bool> stop{false};
  std::thread load([&] {
    while (!stop) (void)Post("/echo", "x");
  });
  int status = 0;
  Json serve;
  bool seen = WaitUntil(
      [&] {
        serve = Api("GET", "/api/serve", &status);
        return status == 200 && EchoFigure(serve, "requests_per_s") > 0;
      },
      60'000);
  stop = true;
  load.join();
  ASSERT_TRUE(seen) << serve.dump(2);
  EXPECT_GT(EchoFigure(serve, "p50_ms"), 0) << serve.dump(2);
  EXPECT_EQ(EchoFigure(serve, "errors_per_s"), 0) << serve.dump(2);
}

// ---- the page in a real browser ----

// A WebDriver session on chromedriver with headless Chromium.
class Browser {
 public:
  absl::Status Start(const std::string& out_dir) {
    out_dir_ = out_dir;
    port_ = testing::FreePort();
    ProcessSpec spec;
    spec.argv = {"/usr/bin/chromedriver", "--port=" + std::to_string(port_)};
    spec.stdout_path = out_dir + "/chromedriver.log";
    spec.stderr_path = spec.stdout_path;
    auto p = launcher_.Launch(spec);
    if (!p.ok()) return p.status();
    driver_ = std::move(*p);
    if (!WaitUntil([&] { return HttpCall("127.0.0.1", port_, "GET", "/status").ok(); }, 30'000)) {
      return absl::UnavailableError("chromedriver did not start");
    }
    Json caps = {{"capabilities",
                  {{"alwaysMatch",
                    {{"browserName", "chrome"},
                     {"goog:chromeOptions",
                      {{"binary", "/usr/bin/chromium"},
                       {"args",
                        {"--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"}}}}}}}}};
    auto r = HttpCall("127.0.0.1", port_, "POST", "/session", caps.dump(),
                      {{"content-type", "application/json"}}, 60'000);
    if (!r.ok()) return r.status();
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status != 200 || j.is_discarded()) return absl::UnavailableError(r->body);
    session_ = j["value"]["sessionId"];
    return absl::OkStatus();
  }
  ~Browser() {
    if (!session_.empty()) (void)HttpCall("127.0.0.1", port_, "DELETE", "/session/" + session_);
    if (driver_) driver_->Terminate(2'000);
  }

  Json Command(const std::string& method, const std::string& path, const Json& body = Json()) {
    auto r =
        HttpCall("127.0.0.1", port_, method, "/session/" + session_ + path,
                 body.is_null() ? "" : body.dump(), {{"content-type", "application/json"}}, 30'000);
    if (!r.ok()) return {{"error", r.status().ToString()}};
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_discarded() ? Json{{"error", r->body}} : j["value"];
  }
  void Go(const std::string& url) { Command("POST", "/url", {{"url", url}}); }
  // The script's value (its body runs as a function).
  Json Run(const std::string& script) {
    return Command("POST", "/execute/sync", {{"script", script}, {"args", Json::array()}});
  }
  std::string Element(const std::string& css) {
    Json e = Command("POST", "/element", {{"using", "css selector"}, {"value", css}});
    return e.is_object() && e.contains("element-6066-11e4-a52e-4f735466cecf")
               ? e["element-6066-11e4-a52e-4f735466cecf"].get<std::string>()
               : "";
  }
  bool Click(const std::string& css) {
    std::string id = Element(css);
    if (id.empty()) return false;
    Json r = Command("POST", "/element/" + id + "/click", Json::object());
    return r.is_null();
  }
  bool Type(const std::string& css, const std::string& text) {
    std::string id = Element(css);
    if (id.empty()) return false;
    return Command("POST", "/element/" + id + "/value", {{"text", text}}).is_null();
  }
  void Screenshot(const std::string& name) {
    Json png = Command("GET", "/screenshot");
    std::string bytes;
    if (png.is_string() && absl::Base64Unescape(png.get<std::string>(), &bytes)) {
      std::ofstream(out_dir_ + "/" + name + ".png", std::ios::binary) << bytes;
    }
  }
  std::string Text(const std::string& css) {
    Json t = Run("const e = document.querySelector(" + Json(css).dump() +
                 "); return e ? e.textContent : null;");
    return t.is_string() ? t.get<std::string>() : "";
  }

 private:
  std::string out_dir_;
  int port_ = 0;
  std::string session_;
  PosixProcessLauncher launcher_;
  std::unique_ptr<Process> driver_;
};

TEST_F(DashboardTest, APersonSeesTheClusterInChromium) {
  if (!std::filesystem::exists("/usr/bin/chromedriver") ||
      !std::filesystem::exists("/usr/bin/chromium")) {
    GTEST_SKIP() << "no /usr/bin/chromium and chromedriver (scripts/setup.sh installs them)";
  }
  const char* env = std::getenv("LUMEN_TEST_OUTPUT");
  std::string out = std::string(env && *env ? env : "dashboard-screenshots");
  std::filesystem::create_directories(out);
  out = std::filesystem::absolute(out).string();
  std::cout << "screenshots in " << out << std::endl;
  Browser b;
  absl::Status started = b.Start(out);
  ASSERT_TRUE(started.ok()) << started;
  const std::string base = "http://127.0.0.1:" + std::to_string(board_->port()) + "/";

  // The token form, and nothing of the cluster.
  b.Go(base);
  ASSERT_TRUE(WaitUntil([&] { return !b.Element("#token").empty(); }, 20'000));
  std::string head = GetRuntimeContext().node.Hex();
  EXPECT_EQ(b.Run("return document.body.innerText").get<std::string>().find(head.substr(0, 12)),
            std::string::npos);
  b.Screenshot("0-login");
  ASSERT_TRUE(b.Type("#token", "wrong-token"));
  ASSERT_TRUE(b.Click("#login"));
  ASSERT_TRUE(WaitUntil([&] { return !b.Text("#login-error").empty(); }, 20'000));
  b.Run("document.querySelector('#token').value = ''");
  ASSERT_TRUE(b.Type("#token", cluster_->token()));
  ASSERT_TRUE(b.Click("#login"));
  ASSERT_TRUE(WaitUntil([&] { return !b.Element("a[data-view=nodes]").empty(); }, 20'000));

  // Overview: live charts drawn from the samples.
  ASSERT_TRUE(WaitUntil(
      [&] {
        Json n = b.Run("return document.querySelectorAll('#chart-cpu polyline').length");
        return n.is_number() && n.get<int>() > 0;
      },
      30'000));
  b.Screenshot("1-overview");

  // Three nodes listed, alive.
  b.Go(base + "#/nodes");
  auto alive_rows = [&] {
    Json n = b.Run(
        "return [...document.querySelectorAll('#nodes-table tbody tr')]"
        ".filter(r => (r.querySelector('[data-col=state]')||{}).textContent === 'ALIVE').length");
    return n.is_number() ? n.get<int>() : -1;
  };
  ASSERT_TRUE(WaitUntil([&] { return alive_rows() == 3; }, 30'000)) << alive_rows();
  b.Screenshot("2-nodes");

  // A submitted job, seen running, then succeeded, with its output.
  int status = 0;
  Json sub = Api("POST", "/api/jobs/", &status,
                 R"({"entrypoint": "sh -c 'echo job-started; sleep 6; echo job-finished'"})");
  ASSERT_EQ(status, 200) << sub;
  std::string id = sub["submission_id"];
  b.Go(base + "#/jobs");
  std::string cell = "#jobs-table tr[data-id=\"" + id + "\"] [data-col=status]";
  ASSERT_TRUE(WaitUntil([&] { return b.Text(cell) == "RUNNING"; }, 30'000)) << b.Text(cell);
  b.Screenshot("3-job-running");
  ASSERT_TRUE(WaitUntil([&] { return b.Text(cell) == "SUCCEEDED"; }, 30'000)) << b.Text(cell);
  ASSERT_TRUE(b.Click("#jobs-table tr[data-id=\"" + id + "\"]"));
  ASSERT_TRUE(WaitUntil(
      [&] { return b.Text("#job-logs").find("job-finished") != std::string::npos; }, 20'000))
      << b.Text("#job-logs");
  b.Screenshot("4-job-succeeded");

  // An actor killed from the page: shown dead, with the cause.
  auto actor = Actor(test_tasks::Counter::Create).Remote(5);
  ASSERT_TRUE(actor.Ready(60'000).ok());
  std::string row = "#actors-table tr[data-id=\"" + actor.ID().Hex() + "\"]";
  b.Go(base + "#/actors");
  ASSERT_TRUE(WaitUntil([&] { return b.Text(row + " [data-col=state]") == "ALIVE"; }, 30'000));
  ASSERT_TRUE(b.Click(row + " button.kill-actor"));
  ASSERT_TRUE(WaitUntil([&] { return b.Text(row + " [data-col=state]") == "DEAD"; }, 30'000))
      << b.Text(row);
  ASSERT_TRUE(WaitUntil([&] { return !b.Text(row + " [data-col=death_cause]").empty(); }, 10'000));
  EXPECT_NE(b.Text(row + " [data-col=death_cause]").find("kill"), std::string::npos)
      << b.Text(row + " [data-col=death_cause]");
  b.Screenshot("5-actor-killed");

  // A serve application's request rate, above zero while it has traffic.
  Deploy(EchoApp());
  std::atomic<bool> stop{false};
  std::thread load([&] {
    while (!stop) (void)Post("/echo", "x");
  });
  b.Go(base + "#/serve");
  std::string rate =
      "#serve-table tr[data-app=echo][data-deployment=Echo] [data-col=requests_per_s]";
  bool busy = WaitUntil(
      [&] {
        std::string t = b.Text(rate);
        return !t.empty() && std::atof(t.c_str()) > 0;
      },
      60'000);
  b.Screenshot("6-serve");
  stop = true;
  load.join();
  EXPECT_TRUE(busy) << b.Text("#serve-table");

  // Failed tasks with their errors.
  b.Go(base + "#/tasks");
  ASSERT_TRUE(WaitUntil([&] { return !b.Element("#task-summary").empty(); }, 20'000));
  b.Screenshot("7-tasks");

  // Logging out: the token form again, and the API says 401.
  ASSERT_TRUE(b.Click("#logout"));
  ASSERT_TRUE(WaitUntil([&] { return !b.Element("#token").empty(); }, 20'000));
  Json after = b.Run(
      "const r = new XMLHttpRequest(); r.open('GET', '/api/v0/nodes', false); r.send(); "
      "return r.status;");
  EXPECT_EQ(after, 401);
}

}  // namespace
}  // namespace lumen
