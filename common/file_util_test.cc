#include "common/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/host_stats.h"
#include "gtest/gtest.h"

namespace lumen {
namespace {

std::string TempPath() {
  return (std::filesystem::temp_directory_path() / ("lumen-fu-" + RandomHex(6))).string();
}

TEST(FileUtilTest, AtomicWriteAndRead) {
  std::string dir = TempPath();
  ASSERT_TRUE(MakeDirs(dir + "/a/b").ok());
  std::string path = dir + "/a/b/file";
  ASSERT_TRUE(WriteFileAtomic(path, "hello", 0600).ok());
  EXPECT_EQ(*ReadFile(path), "hello");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
  RemoveAll(dir);
  EXPECT_FALSE(FileExists(dir));
}

TEST(FileUtilTest, PrivateDirIsMadePrivate) {
  std::string dir = TempPath();
  ASSERT_EQ(::mkdir(dir.c_str(), 0777), 0);
  ::chmod(dir.c_str(), 0777);
  ASSERT_TRUE(EnsurePrivateDir(dir).ok());
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::string file = dir + "/f";
  ASSERT_TRUE(WriteFileAtomic(file, "x").ok());
  EXPECT_EQ(EnsurePrivateDir(file).code(), absl::StatusCode::kFailedPrecondition);
  RemoveAll(dir);
}

TEST(FileUtilTest, Sha256AndRandom) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(RandomHex(16).size(), 32u);
  EXPECT_NE(RandomHex(16), RandomHex(16));
}

}  // namespace
}  // namespace lumen

namespace lumen {
namespace {

TEST(HostStats, ParsesProcFiles) {
  uint64_t busy = 0, total = 0;
  ASSERT_TRUE(ParseProcStat("cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4\n", &busy, &total));
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(busy, 155u);
  EXPECT_FALSE(ParseProcStat("intr 1 2 3", &busy, &total));
  EXPECT_FALSE(ParseProcStat("cpu  1 2", &busy, &total));
  int64_t mem = 0, avail = 0;
  ASSERT_TRUE(ParseMemInfo("MemTotal:       16000 kB\nMemFree: 1 kB\nMemAvailable:   4000 kB\n",
                           &mem, &avail));
  EXPECT_EQ(mem, 16000 * 1024);
  EXPECT_EQ(avail, 4000 * 1024);
  EXPECT_FALSE(ParseMemInfo("MemTotal: 5 kB\n", &mem, &avail));
}

TEST(HostStats, ReadsThisMachine) {
  HostStatsReader reader;
  HostStats first = reader.Read();
  EXPECT_GT(first.num_cpus, 0);
  EXPECT_GT(first.mem_total_bytes, 0);
  EXPECT_GT(first.mem_used_bytes, 0);
  EXPECT_LE(first.mem_used_bytes, first.mem_total_bytes);
  HostStats second = reader.Read();
  EXPECT_GE(second.cpu_percent, 0);
  EXPECT_LE(second.cpu_percent, 100);
}

}  // namespace
}  // namespace lumen
