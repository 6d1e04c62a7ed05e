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
#include "test_tasks.h"
#include "test_util.h"

namespace lumen {
namespace {

using testing::RunCommand;

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
  ASSERT_EQ(pids.size(), 3u);  // GCS and two node managers

  // A program finds the cluster by address and reads the token from LUMEN_HOME.
  Config config;
  config.address = address;
  ASSERT_TRUE(Init(config).ok());
  EXPECT_EQ(*Get(Task(test_tasks::Add).Remote(20, 22), 30'000), 42);
  Shutdown();

  ASSERT_EQ(RunCommand(Lumen("stop"), &out), 0) << out;
  EXPECT_NE(out.find("stopped 3 processes"), std::string::npos) << out;
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

}  // namespace
}  // namespace lumen
