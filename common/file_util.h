// Small file-system helpers, and where lumen keeps per-user state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace lumen {

absl::StatusOr<std::string> ReadFile(const std::string& path);
// Up to `max_bytes` of `path` from `offset` (< 0: that many bytes before
// the end; past the end: nothing), for logs read piece by piece.
struct FileRange {
  std::string data;
  int64_t next_offset = 0;  // where the next read starts
  int64_t size = 0;         // of the file when read
};
absl::StatusOr<FileRange> ReadFileRange(const std::string& path, int64_t offset, int64_t max_bytes);
// Writes to a temporary file and renames it over `path`, with `mode`.
absl::Status WriteFileAtomic(const std::string& path, std::string_view content, int mode = 0644);
// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, int mode = 0755);
// Creates `path` (mode 0700) or checks that it exists, belongs to this user
// and no one else can enter it; the place for tokens and pid files.
absl::Status EnsurePrivateDir(const std::string& path);
bool FileExists(const std::string& path);
// rm -rf; ignores what does not exist.
void RemoveAll(const std::string& path);

// $LUMEN_HOME, or /tmp/lumen-<uid>. Holds the cluster token and the record of
// processes `lumen start` started.
std::string LumenHome();
// Directory of the running executable (from /proc/self/exe).
std::string ExecutableDir();
// Directory of the shared object or executable containing `address`.
std::string ObjectFileOf(const void* address);

std::string Sha256Hex(std::string_view data);
// Whether a presented secret is the expected one, in time independent of
// where they differ.
bool SameSecret(std::string_view a, std::string_view b);
// The token a client presented: the x-lumen-token header's value, else
// the one in "Authorization: Bearer TOKEN".
std::string PresentedToken(std::string_view x_lumen_token, std::string_view authorization);
// `n` random bytes from the OS, hex encoded.
std::string RandomHex(size_t n);

}  // namespace lumen
