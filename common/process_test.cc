#include "common/process.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace lumen {
namespace {

// The child is a shell: it can print a ready line on fd 4 and watch fd 3.
ProcessSpec Shell(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  return spec;
}

TEST(ProcessTest, ReadyLineAndExitStatus) {
  PosixProcessLauncher launcher;
  ProcessSpec spec = Shell("echo 'port=1234 node_id=ab' >&$LUMEN_READY_FD; exit 3");
  spec.ready_pipe = true;
  auto p = launcher.Launch(spec);
  ASSERT_TRUE(p.ok()) << p.status();
  auto line = (*p)->WaitReady(10'000);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "port=1234 node_id=ab");
  EXPECT_TRUE((*p)->WaitForExit(10'000));
  EXPECT_EQ((*p)->DescribeExit(), "exit code 3");
}

TEST(ProcessTest, ExitingBeforeReadyIsAnErrorNotAHang) {
  PosixProcessLauncher launcher;
  ProcessSpec spec = Shell("exit 7");
  spec.ready_pipe = true;
  auto p = launcher.Launch(spec);
  ASSERT_TRUE(p.ok());
  auto line = (*p)->WaitReady(10'000);
  EXPECT_EQ(line.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(line.status().message().find("exit code 7"), std::string::npos) << line.status();
}

TEST(ProcessTest, ClosingTheLifelineReachesTheChild) {
  PosixProcessLauncher launcher;
  // The child blocks reading its lifeline and exits 5 once it closes.
  ProcessSpec spec = Shell("cat <&$LUMEN_LIFELINE_FD >/dev/null; exit 5");
  spec.lifeline = true;
  auto p = launcher.Launch(spec);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE((*p)->TryReap());
  EXPECT_FALSE((*p)->WaitForExit(20)) << "it waits on its lifeline";
  (*p)->CloseLifeline();
  EXPECT_TRUE((*p)->WaitForExit(10'000));
  EXPECT_EQ((*p)->DescribeExit(), "exit code 5");
}

TEST(ProcessTest, TerminateKillsAndReaps) {
  PosixProcessLauncher launcher;
  // exec: the process that ignores SIGTERM is the one that sleeps (an
  // ignored signal stays ignored across exec), so nothing outlives the kill.
  auto p = launcher.Launch(Shell("trap '' TERM; exec sleep 60"));
  ASSERT_TRUE(p.ok());
  pid_t pid = (*p)->pid();
  EXPECT_TRUE(ProcessAlive(pid));
  (*p)->Terminate(100);
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_NE((*p)->DescribeExit().find("signal"), std::string::npos);
}

TEST(ProcessTest, AMissingExecutableIsAnError) {
  PosixProcessLauncher launcher;
  ProcessSpec spec;
  spec.argv = {"/nonexistent/binary"};
  auto p = launcher.Launch(spec);
  EXPECT_FALSE(p.ok());
}

}  // namespace
}  // namespace lumen
