// Integration test of the `lumen` command: start a head and a second node as
// daemons, inspect them, run a job on them, stop them; and bad input.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "common/file_util.h"
#include "common/process.h"
#include "gtest/gtest.h"
#include "lumen/api.h"
#include "nlohmann/json.hpp"
#include "test_tasks.h"
#include "test_util.h"

namespace lumen {
namespace {

using testing::RunCommand;
using Json = nlohmann::json;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("LUMEN_HOME", home_.path().c_str(), 1); }
  void TearDown() override {
    std::string out;
    RunCommand(Lumen("stop"), &out);
    ::unsetenv("LUMEN_HOME");
  }
  std::string Lumen(const std::string& args) const {
    return std::string(LUMEN_CLI_PATH) + " " + args;
  }
  // Starts a one-CPU head on a free port; returns its GCS address.
  std::string StartHead() {
    std::string out;
    EXPECT_EQ(RunCommand(Lumen("start --head --port 0 --resources '{\"CPU\": 1}' "
                               "--object-store-memory 67108864"),
                         &out),
              0)
        << out;
    std::smatch m;
    EXPECT_TRUE(std::regex_search(out, m, std::regex("GCS: +(127\\.0\\.0\\.1:[0-9]+)"))) << out;
    std::smatch d;
    EXPECT_TRUE(std::regex_search(out, d, std::regex("dashboard: http://127\\.0\\.0\\.1:[0-9]+/")))
        << out;
    return m.empty() ? "" : std::string(m[1]);
  }
  std::vector<pid_t> RecordedPids() const {
    std::vector<pid_t> pids;
    std::ifstream in(home_.path() + "/processes");
    for (std::string line; std::getline(in, line);) pids.push_back(std::atoi(line.c_str()));
    return pids;
  }
  testing::TempDir home_;
};

TEST_F(CliTest, StartJoinStatusRunAndStop) {
  std::string out;
  std::string address = StartHead();
  ASSERT_FALSE(address.empty());
  ASSERT_EQ(RunCommand(Lumen("start --address " + address + " --resources '{\"CPU\": 2}'"), &out),
            0)
      << out;
  ASSERT_EQ(RunCommand(Lumen("status"), &out), 0) << out;
  EXPECT_NE(out.find("2 nodes alive"), std::string::npos) << out;
  EXPECT_NE(out.find("1/1"), std::string::npos) << out;  // CPU available/total
  EXPECT_NE(out.find("2/2"), std::string::npos) << out;
  std::string token_before = *ReadFile(home_.path() + "/token");
  EXPECT_EQ(RunCommand(Lumen("start --head --port 0"), &out), 1);
  EXPECT_NE(out.find("already running"), std::string::npos) << out;
  EXPECT_EQ(*ReadFile(home_.path() + "/token"), token_before) << "the running head's token stays";
  std::vector<pid_t> pids = RecordedPids();
  ASSERT_EQ(pids.size(), 4u);  // GCS, node manager, dashboard, node manager

  // A program finds the cluster by address and reads the token from LUMEN_HOME.
  Config config;
  config.address = address;
  ASSERT_TRUE(Init(config).ok());
  EXPECT_EQ(*Get(Task(test_tasks::Add).Remote(20, 22), 30'000), 42);
  Shutdown();

  ASSERT_EQ(RunCommand(Lumen("stop"), &out), 0) << out;
  EXPECT_NE(out.find("stopped 4 processes"), std::string::npos) << out;
  for (pid_t p : pids) EXPECT_FALSE(ProcessAlive(p)) << p;
  EXPECT_NE(RunCommand(Lumen("status"), &out), 0);
}

TEST_F(CliTest, ADriverThatDiesTakesItsWorkersWithIt) {
  std::string address = StartHead();
  ASSERT_FALSE(address.empty());
  std::string out;
  ASSERT_EQ(RunCommand(Lumen("start --address " + address + " --resources '{\"CPU\": 2}'"), &out),
            0)
      << out;
  std::vector<pid_t> node_managers = RecordedPids();
  node_managers.erase(node_managers.begin());  // the GCS
  auto workers = [&] {
    size_t n = 0;
    for (pid_t nm : node_managers) n += testing::Descendants(nm).size();
    return n;
  };
  testing::TempDir dir;
  PosixProcessLauncher launcher;
  ProcessSpec spec;
  spec.argv = {TEST_DRIVER_PATH, dir.path(), "3"};
  spec.env = {{"LUMEN_ADDRESS", address}};
  spec.stdout_path = dir.path() + "/driver.out";
  auto driver = launcher.Launch(spec);
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE(testing::WaitUntil([&] { return workers() == 3; }))
      << "three workers should run the driver's tasks, saw " << workers();
  ASSERT_EQ((*driver)->Signal(SIGKILL), absl::OkStatus());
  (*driver)->WaitForExit(-1);
  EXPECT_TRUE(testing::WaitUntil([&] { return workers() == 0; }))
      << workers() << " workers left after their driver died";
}

TEST_F(CliTest, BadInputGetsAClearErrorAndANonZeroExit) {
  std::string out;
  EXPECT_EQ(RunCommand(Lumen("status"), &out), 1);
  EXPECT_NE(out.find("lumen start --head"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Lumen("start"), &out), 1);
  EXPECT_NE(out.find("--head"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Lumen("start --head --port 0 --resources 'CPU=4'"), &out), 1);
  EXPECT_NE(out.find("--resources"), std::string::npos) << out;
  EXPECT_NE(out.find("JSON"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Lumen("start --head --port 0 --resources '{\"CPU\": -2}'"), &out), 1);
  EXPECT_NE(out.find("CPU"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Lumen("start --address nowhere"), &out), 1);
  EXPECT_NE(out.find("HOST:PORT"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Lumen("start --head --host 0.0.0.0"), &out), 1);
  EXPECT_NE(out.find("127.0.0.1"), std::string::npos) << out;

  EXPECT_NE(RunCommand(Lumen("frobnicate"), &out), 0);
  EXPECT_NE(RunCommand(Lumen("start --head --port 99999"), &out), 0);
}

TEST_F(CliTest, AJoiningNodeWithTheWrongTokenIsRefused) {
  std::string out;
  std::string address = StartHead();
  ASSERT_FALSE(address.empty());
  EXPECT_EQ(RunCommand(Lumen("start --address " + address + " --token not-the-token"), &out), 1);
  EXPECT_NE(out.find("token"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("status --token not-the-token"), &out), 1);
  EXPECT_NE(out.find("token"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Lumen("status"), &out), 0) << out;
  EXPECT_NE(out.find("1 node alive"), std::string::npos) << out;
  // The token from a file (kept out of ps), and a clear error for a bad file.
  ASSERT_EQ(RunCommand(Lumen("status --token-file " + home_.path() + "/token"), &out), 0) << out;
  EXPECT_NE(out.find("1 node alive"), std::string::npos) << out;
  EXPECT_NE(RunCommand(Lumen("status --token-file " + home_.path() + "/no-such-file"), &out), 0);
  EXPECT_NE(out.find("cannot read a token"), std::string::npos) << out;
}

// Worker processes (lumen_worker) below the recorded node managers.
int CountWorkers(const std::vector<pid_t>& node_managers) {
  int n = 0;
  for (pid_t nm : node_managers) {
    for (pid_t p : testing::Descendants(nm)) {
      auto comm = ReadFile("/proc/" + std::to_string(p) + "/comm");
      n += comm.ok() && comm->rfind("lumen_worker", 0) == 0;
    }
  }
  return n;
}

TEST_F(CliTest, JobsRunTheirDriverOnTheHeadAndEndAsItDid) {
  std::string address = StartHead();
  ASSERT_FALSE(address.empty());
  std::vector<pid_t> node_managers = RecordedPids();
  node_managers.erase(node_managers.begin());  // the GCS
  std::string out;

  // A driver that runs a task and waits for the test's word.
  testing::TempDir dir;
  ASSERT_EQ(RunCommand(Lumen(std::string("job submit --no-wait --submission-id first -- ") +
                             TEST_DRIVER_PATH + " " + dir.path() + " 1"),
                       &out),
            0)
      << out;
  EXPECT_NE(out.find("submitted job first"), std::string::npos) << out;
  ASSERT_TRUE(testing::WaitUntil([&] { return CountWorkers(node_managers) == 1; }, 60'000))
      << "the job's task should run in a worker";
  ASSERT_EQ(RunCommand(Lumen("job status first"), &out), 0) << out;
  EXPECT_NE(out.find("RUNNING"), std::string::npos) << out;
  std::ofstream(dir.path() + "/release") << "go";
  ASSERT_TRUE(testing::WaitUntil([&] {
    return RunCommand(Lumen("job status first"), &out) == 0 &&
           out.find("SUCCEEDED") != std::string::npos;
  })) << out;
  ASSERT_EQ(RunCommand(Lumen("job logs first"), &out), 0) << out;
  EXPECT_NE(out.find("started"), std::string::npos) << out;

  // The driver shows its tasks' output, each line marked with where it ran.
  testing::TempDir shout;
  ASSERT_EQ(RunCommand(Lumen(std::string("job submit --no-wait --submission-id shout -- ") +
                             TEST_DRIVER_PATH + " shout hello-driver " + shout.path()),
                       &out),
            0)
      << out;
  EXPECT_TRUE(testing::WaitUntil([&] {
    return RunCommand(Lumen("job logs shout"), &out) == 0 &&
           std::regex_search(out, std::regex("\\(pid=[0-9]+, node=[0-9a-f]+\\) shout-out: "
                                             "hello-driver")) &&
           out.find(") shout-err: hello-driver") != std::string::npos;
  })) << out;
  std::ofstream(shout.path() + "/release") << "go";
  ASSERT_TRUE(testing::WaitUntil([&] {
    return RunCommand(Lumen("job status shout"), &out) == 0 &&
           out.find("SUCCEEDED") != std::string::npos;
  })) << out;

  // A driver that ends as soon as its tasks did: the workers it leaves are
  // stopped, and what they had not reported yet still reaches the state
  // API (where each task ran).
  ASSERT_EQ(RunCommand(Lumen(std::string("job submit --submission-id quick -- ") +
                             TEST_DRIVER_PATH + " quick 6"),
                       &out),
            0)
      << out;
  std::smatch job_id;
  ASSERT_TRUE(std::regex_search(out, job_id, std::regex("job=([0-9a-f]+)"))) << out;
  Json quick;
  EXPECT_TRUE(testing::WaitUntil([&] {
    if (RunCommand(Lumen("list tasks --json --filter job=" + std::string(job_id[1])), &out) != 0) {
      return false;
    }
    quick = Json::parse(out, nullptr, false);
    if (!quick.is_array() || quick.size() != 6) return false;
    for (const auto& t : quick) {
      if (t["state"] != "FINISHED" || t["pid"].get<int>() <= 0 ||
          t["started_ms"].get<int64_t>() <= 0) {
        return false;
      }
    }
    return true;
  })) << quick.dump(2);

  // Followed to its end: its output, and its failure as the exit status.
  EXPECT_EQ(RunCommand(Lumen("job submit --env GREETING=there -- /bin/sh -c "
                             "'echo hello $GREETING; exit 3'"),
                       &out),
            1)
      << out;
  EXPECT_NE(out.find("hello there"), std::string::npos) << out;
  EXPECT_NE(out.find("FAILED"), std::string::npos) << out;
  EXPECT_NE(out.find("exit code 3"), std::string::npos) << out;

  // Stopped: its driver and its workers go.
  testing::TempDir held;
  ASSERT_EQ(RunCommand(Lumen(std::string("job submit --no-wait --submission-id held -- ") +
                             TEST_DRIVER_PATH + " " + held.path() + " 1"),
                       &out),
            0)
      << out;
  ASSERT_TRUE(testing::WaitUntil([&] { return CountWorkers(node_managers) == 1; }, 60'000));
  ASSERT_EQ(RunCommand(Lumen("job stop held"), &out), 0) << out;
  EXPECT_NE(out.find("STOPPED"), std::string::npos) << out;
  EXPECT_TRUE(testing::WaitUntil([&] { return CountWorkers(node_managers) == 0; }))
      << "a stopped job's workers should go";
  ASSERT_EQ(RunCommand(Lumen("job stop held"), &out), 0) << out;
  EXPECT_NE(out.find("already ended"), std::string::npos) << out;

  ASSERT_EQ(RunCommand(Lumen("job list"), &out), 0) << out;
  EXPECT_NE(out.find("5 jobs"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Lumen("job delete held"), &out), 0) << out;
  ASSERT_EQ(RunCommand(Lumen("job list --json"), &out), 0) << out;
  EXPECT_EQ(out.find("\"held\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"first\""), std::string::npos) << out;

  // Bad input: clear words, non-zero exits, nothing started.
  EXPECT_EQ(RunCommand(Lumen("job submit -- no-such-command-anywhere"), &out), 1);
  EXPECT_NE(out.find("not found on the head node"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("job submit --submission-id first -- /bin/true"), &out), 1);
  EXPECT_NE(out.find("exists already"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("job status nope"), &out), 1);
  EXPECT_NE(out.find("no job 'nope'"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("job logs 'a/b'"), &out), 1);
  EXPECT_NE(out.find("letters, digits"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("job submit --env NOEQUALS -- /bin/true"), &out), 1);
  EXPECT_NE(out.find("NAME=VALUE"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("job submit --code /no/such.so -- /bin/true"), &out), 1);
  EXPECT_NE(out.find("no such file"), std::string::npos) << out;
}

TEST_F(CliTest, LogsOfWorkersTasksActorsAndNodesComeFromTheirNode) {
  std::string address = StartHead();
  ASSERT_FALSE(address.empty());
  Config config;
  config.address = address;
  ASSERT_TRUE(Init(config).ok());
  ASSERT_TRUE(Get(Task(test_tasks::Shout).Remote(std::string("hello-logs")), 30'000).ok());
  auto actor = Actor(test_tasks::Counter::Create).Remote(1);
  ASSERT_TRUE(Get(actor.Task(&test_tasks::Counter::Pid).Remote(), 30'000).ok());
  std::string actor_id = actor.ID().Hex();

  std::string out;
  Json task;
  ASSERT_TRUE(testing::WaitUntil([&] {
    if (RunCommand(Lumen("list tasks --json --filter state=FINISHED"), &out) != 0) return false;
    Json rows = Json::parse(out, nullptr, false);
    if (!rows.is_array()) return false;
    for (const auto& r : rows) {
      if (r["name"].get<std::string>().find("Shout") != std::string::npos) task = r;
    }
    return task.is_object();
  })) << out;
  std::string task_id = task["task_id"], worker_id = task["worker_id"];

  // Workers and objects, from every node.
  auto big = Put(std::vector<uint32_t>(1 << 18, 7));  // 1 MiB: in the node's store
  ASSERT_EQ(RunCommand(Lumen("list workers --json"), &out), 0) << out;
  bool hosts_actor = false;
  for (const auto& w : Json::parse(out)) {
    hosts_actor = hosts_actor || (w["state"] == "ACTOR" && w["actor_id"] == actor_id);
  }
  EXPECT_TRUE(hosts_actor) << out;
  ASSERT_EQ(RunCommand(Lumen("list workers --filter state=actor"), &out), 0) << out;
  EXPECT_NE(out.find(actor_id.substr(0, 12)), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Lumen("list objects --json"), &out), 0) << out;
  bool listed = false;
  for (const auto& o : Json::parse(out)) {
    listed = listed || (o["object_id"] == big.ID().Hex() && o["size"].get<int64_t>() >= (1 << 20));
  }
  EXPECT_TRUE(listed) << out;
  ASSERT_EQ(RunCommand(Lumen("summary objects"), &out), 0) << out;
  EXPECT_NE(out.find("OBJECTS"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("list workers --filter color=red"), &out), 1);
  EXPECT_NE(out.find("color"), std::string::npos) << out;
  Shutdown();  // the job ends: its workers go, their logs stay

  ASSERT_EQ(RunCommand(Lumen("logs --task " + task_id), &out), 0) << out;
  EXPECT_NE(out.find("shout-out: hello-logs"), std::string::npos) << out;
  EXPECT_EQ(out.find("shout-err"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Lumen("logs --task " + task_id + " --err"), &out), 0) << out;
  EXPECT_NE(out.find("shout-err: hello-logs"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Lumen("logs --worker " + worker_id + " --tail 1"), &out), 0) << out;
  EXPECT_EQ(out, "shout-out: hello-logs\n");
  ASSERT_EQ(RunCommand(Lumen("logs --actor " + actor_id.substr(0, 8)), &out), 0) << out;
  ASSERT_EQ(RunCommand(Lumen("list nodes --json"), &out), 0) << out;
  std::string node_id = Json::parse(out)[0]["node_id"];
  ASSERT_EQ(RunCommand(Lumen("logs --node " + node_id.substr(0, 6)), &out), 0) << out;
  EXPECT_NE(out.find("node manager ready"), std::string::npos) << out;

  // Bad input.
  EXPECT_EQ(RunCommand(Lumen("logs"), &out), 1);
  EXPECT_NE(out.find("say whose log"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("logs --task 1234"), &out), 1);
  EXPECT_NE(out.find("whole task id"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("logs --worker " + std::string(32, 'a')), &out), 1);
  EXPECT_NE(out.find("no live node has a log"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Lumen("logs --actor ffffffff"), &out), 1);
  EXPECT_NE(out.find("no actor"), std::string::npos) << out;
  EXPECT_NE(RunCommand(Lumen("logs --task " + task_id + " --worker " + worker_id), &out), 0);
}

}  // namespace
}  // namespace lumen
