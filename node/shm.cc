// POSIX shared-memory objects; see shm.h.
#include "node/shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/ids.h"
#include "common/process.h"

namespace lumen {
namespace {

constexpr char kShmDir[] = "/dev/shm/";

absl::Status ErrnoStatus(const std::string& what, const std::string& name) {
  int e = errno;
  std::string msg = what + " " + name + ": " + std::strerror(e);
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EEXIST) return absl::AlreadyExistsError(msg);
  if (e == ENOSPC || e == ENOMEM) {
    return absl::ResourceExhaustedError(msg + " (is /dev/shm full? see df -h /dev/shm)");
  }
  return absl::InternalError(msg);
}

std::string Slash(const std::string& name) { return "/" + name; }

}  // namespace

MappedObject::~MappedObject() {
  if (data_ != nullptr && size_ > 0) ::munmap(data_, size_);
}

std::string StorePrefix(pid_t node_manager_pid, const NodeId& node) {
  return "lumen." + std::to_string(node_manager_pid) + "." + node.Hex().substr(0, 16);
}

std::string ShmName(const std::string& prefix, const ObjectId& id) {
  return prefix + "." + id.Hex();
}

absl::StatusOr<std::unique_ptr<MappedObject>> CreateShmObject(const std::string& name,
                                                              size_t size) {
  int fd = ::shm_open(Slash(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("cannot create", name);
  if (size > 0 && ::posix_fallocate(fd, 0, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    ::shm_unlink(Slash(name).c_str());
    errno = ENOSPC;
    return ErrnoStatus("cannot allocate " + std::to_string(size) + " bytes for", name);
  }
  char* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      absl::Status s = ErrnoStatus("cannot map", name);
      ::close(fd);
      ::shm_unlink(Slash(name).c_str());
      return s;
    }
    data = static_cast<char*>(p);
  }
  ::close(fd);
  return std::make_unique<MappedObject>(data, size);
}

absl::StatusOr<std::unique_ptr<MappedObject>> OpenShmObject(const std::string& name) {
  int fd = ::shm_open(Slash(name).c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("cannot open", name);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoStatus("cannot stat", name);
    ::close(fd);
    return s;
  }
  size_t size = static_cast<size_t>(st.st_size);
  char* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      absl::Status s = ErrnoStatus("cannot map", name);
      ::close(fd);
      return s;
    }
    data = static_cast<char*>(p);
  }
  ::close(fd);
  return std::make_unique<MappedObject>(data, size);
}

absl::StatusOr<size_t> ShmObjectSize(const std::string& name) {
  struct stat st;
  if (::stat((kShmDir + name).c_str(), &st) != 0) return ErrnoStatus("cannot stat", name);
  return static_cast<size_t>(st.st_size);
}

absl::StatusOr<std::string> ReadShmRange(const std::string& name, size_t offset, size_t length) {
  int fd = ::shm_open(Slash(name).c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("cannot open", name);
  std::string out(length, '\0');
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

void UnlinkShmObject(const std::string& name) { ::shm_unlink(Slash(name).c_str()); }

static int RemoveMatching(const std::function<bool(const std::string&)>& match) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kShmDir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("lumen.", 0) != 0 || !match(name)) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 || st.st_uid != ::getuid()) continue;
    if (::shm_unlink(Slash(name).c_str()) == 0) removed++;
  }
  return removed;
}

int SweepStaleShmObjects() {
  return RemoveMatching([](const std::string& name) {
    size_t dot = name.find('.', 6);
    if (dot == std::string::npos) return false;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(6, dot - 6).c_str()));
    return pid > 0 && !ProcessAlive(pid);
  });
}

int RemoveShmObjectsOfJob(const std::string& prefix, const JobId& job) {
  const std::string start = prefix + ".";
  return RemoveMatching([&](const std::string& name) {
    if (name.rfind(start, 0) != 0) return false;
    ObjectId id = ObjectId::FromHex(name.substr(start.size(), 2 * ObjectId::kSize));
    return !id.IsNil() && JobIdOfTask(TaskIdOfObject(id)) == job;
  });
}

std::string ShmTempName(const std::string& prefix, const ObjectId& id) {
  static std::atomic<uint64_t> counter{0};
  return ShmName(prefix, id) + ".tmp." + std::to_string(::getpid()) + "." +
         std::to_string(++counter);
}

absl::Status RenameShmObject(const std::string& from, const std::string& to) {
  if (::rename((kShmDir + from).c_str(), (kShmDir + to).c_str()) != 0) {
    return ErrnoStatus("cannot rename to " + to + ":", from);
  }
  return absl::OkStatus();
}

int RemoveShmObjectsWithPrefix(const std::string& prefix) {
  return RemoveMatching([&](const std::string& name) { return name.rfind(prefix + ".", 0) == 0; });
}

}  // namespace lumen
