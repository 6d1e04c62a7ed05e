// Test helpers; see test_util.h.
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "lumen/api.h"

namespace lumen::testing {
namespace fs = std::filesystem;

bool HasFileStartingWith(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  }
  return false;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer() : port_(FreePort()) {
  ProcessSpec spec;
  spec.argv = {"/usr/bin/redis-server",
               "--port",
               std::to_string(port_),
               "--bind",
               "127.0.0.1",
               "--save",
               "",
               "--appendonly",
               "no",
               "--dir",
               dir_.path()};
  spec.stdout_path = dir_.path() + "/redis.log";
  spec.stderr_path = spec.stdout_path;
  auto p = launcher_.Launch(spec);
  if (p.ok()) process_ = std::move(*p);
}

RedisServer::~RedisServer() {
  if (process_) process_->Terminate(2000);
}

bool RedisServer::Ready() {
  return process_ && WaitUntil([&] {
           std::string out;
           return RunCommand("redis-cli -p " + std::to_string(port_) + " ping", &out) == 0 &&
                  out.find("PONG") != std::string::npos;
         });
}

absl::StatusOr<std::unique_ptr<worker::LocalCluster>> StartAndConnect(
    const worker::LocalClusterOptions& options, const std::vector<std::string>& code_paths) {
  auto cluster = worker::LocalCluster::Start(options);
  if (!cluster.ok()) return cluster.status();
  Config config;
  config.address = (*cluster)->gcs_address();
  config.token = (*cluster)->token();
  config.code_paths = code_paths;
  if (absl::Status s = Init(config); !s.ok()) return s;
  return cluster;
}

bool WaitUntil(const std::function<bool()>& condition, int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "lumen-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  path_ = made ? made : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

pid_t ParentOf(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(stat, content);
  size_t paren = content.rfind(')');
  if (paren == std::string::npos) return -1;
  char state;
  int ppid = -1;
  std::sscanf(content.c_str() + paren + 2, "%c %d", &state, &ppid);
  if (state == 'Z') return -1;
  return ppid;
}

std::set<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::atoi(name.c_str());
    pid_t parent = ParentOf(pid);
    if (parent > 0) children.emplace(parent, pid);
  }
  std::set<pid_t> out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto range = children.equal_range(p);
    for (auto it = range.first; it != range.second; ++it) {
      if (out.insert(it->second).second) todo.push_back(it->second);
    }
  }
  return out;
}

int RunCommand(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace lumen::testing
