#include "common/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

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
