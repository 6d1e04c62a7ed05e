// File-system helpers; see file_util.h.
#include "common/file_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lumen {

namespace fs = std::filesystem;

static std::string ToHex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<FileRange> ReadFileRange(const std::string& path, int64_t offset,
                                        int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path + ": " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  FileRange r;
  r.size = static_cast<int64_t>(in.tellg());
  int64_t from = offset < 0 ? std::max<int64_t>(0, r.size + offset) : std::min(offset, r.size);
  int64_t n = std::max<int64_t>(0, std::min(max_bytes, r.size - from));
  r.data.resize(static_cast<size_t>(n));
  in.seekg(from);
  in.read(r.data.data(), n);
  r.data.resize(static_cast<size_t>(in.gcount()));
  r.next_offset = from + static_cast<int64_t>(r.data.size());
  return r;
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view content, int mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return absl::InternalError("cannot write " + tmp + ": " + std::strerror(errno));
    }
    done += n;
  }
  ::fchmod(fd, mode);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, int mode) {
  std::error_code ec;
  fs::path p(path);
  fs::path cur;
  for (const auto& part : p) {
    cur /= part;
    if (fs::exists(cur, ec)) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::InternalError("cannot create " + cur.string() + ": " + std::strerror(errno));
    }
  }
  return absl::OkStatus();
}

absl::Status EnsurePrivateDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    LUMEN_RETURN_IF_ERROR(MakeDirs(fs::path(path).parent_path().string()));
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError("cannot create " + path + ": " + std::strerror(errno));
    }
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return absl::InternalError("cannot stat " + path + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(path + " is not a directory; remove it or set LUMEN_HOME");
  }
  if (st.st_uid != ::getuid()) {
    return absl::PermissionDeniedError(path + " belongs to another user; set LUMEN_HOME to a " +
                                       "directory of your own");
  }
  if ((st.st_mode & 077) != 0 && ::chmod(path.c_str(), 0700) != 0) {
    return absl::PermissionDeniedError("cannot make " + path + " private (chmod 700)");
  }
  return absl::OkStatus();
}

bool FileExists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string LumenHome() {
  if (const char* home = std::getenv("LUMEN_HOME"); home && *home) return home;
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp && *tmp) ? tmp : "/tmp";
  return base + "/lumen-" + std::to_string(::getuid());
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  return fs::path(buf).parent_path().string();
}

std::string ObjectFileOf(const void* address) {
  Dl_info info;
  if (::dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  std::error_code ec;
  fs::path p = fs::canonical(info.dli_fname, ec);
  return ec ? std::string(info.dli_fname) : p.string();
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return ToHex(digest, sizeof(digest));
}

bool SameSecret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string PresentedToken(std::string_view x_lumen_token, std::string_view authorization) {
  if (!x_lumen_token.empty()) return std::string(x_lumen_token);
  if (authorization.rfind("Bearer ", 0) == 0) return std::string(authorization.substr(7));
  return "";
}

std::string RandomHex(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    std::abort();  // no randomness: a token or session id must not be guessable
  }
  return ToHex(reinterpret_cast<const unsigned char*>(bytes.data()), n);
}

}  // namespace lumen
