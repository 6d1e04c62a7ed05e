// The serving data plane; see channel.h.
#include "serve/channel.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "common/logging.h"

namespace lumen::serve {
namespace {

constexpr size_t kHeaderBytes = 12;              // u32 length, u64 id
constexpr uint32_t kMaxPayloadBytes = 1u << 30;  // one request or answer
constexpr uint32_t kMaxHelloBytes = 4096;        // before the token matched
constexpr int kConnectTimeoutMs = 3'000;
constexpr int kSendTimeoutS = 30;   // a peer that stopped reading is lost
constexpr int kHelloTimeoutS = 10;  // to present the token, from accept (absolute)
// Connections that have not presented the token yet; beyond it new ones are
// closed at once. They cost a buffer each, no thread.
constexpr size_t kMaxUnauthenticated = 256;

std::string Frame(uint64_t id, const std::string& payload) {
  std::string out(kHeaderBytes + payload.size(), '\0');
  auto len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<char>((id >> (8 * i)) & 0xff);
  std::memcpy(out.data() + kHeaderBytes, payload.data(), payload.size());
  return out;
}

bool WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool ReadAll(int fd, char* out, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::recv(fd, out + got, size - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

bool ReadFrame(int fd, uint64_t* id, std::string* payload, uint32_t max_bytes = kMaxPayloadBytes) {
  unsigned char header[kHeaderBytes];
  if (!ReadAll(fd, reinterpret_cast<char*>(header), kHeaderBytes)) return false;
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(header[i]) << (8 * i);
  *id = 0;
  for (int i = 0; i < 8; ++i) *id |= static_cast<uint64_t>(header[4 + i]) << (8 * i);
  if (len > max_bytes) return false;
  payload->resize(len);
  return ReadAll(fd, payload->data(), len);
}

// No Nagle delay; a peer that stops reading, or whose host vanished
// without closing (keepalive probes and unacknowledged data give up after
// about 30 s), is a lost connection.
void TuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{kSendTimeoutS, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = 10, interval = 5, probes = 4;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  unsigned int user_timeout_ms = kSendTimeoutS * 1000;
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// host:port -> (host, port); "[::1]:80" too.
std::pair<std::string, std::string> SplitAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return {address, ""};
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, address.substr(colon + 1)};
}

// A connected socket, or why not; gives up after `timeout_ms`.
absl::StatusOr<int> Connect(const std::string& address, int timeout_ms) {
  auto [host, port] = SplitAddress(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError("cannot resolve replica address " + address + ": " +
                                  ::gai_strerror(rc));
  }
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, timeout_ms);
      int err = rc > 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof(err);
      if (rc > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc < 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError("cannot connect to replica at " + address + ": " + why);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  TuneSocket(fd);
  return fd;
}

}  // namespace

// ---- ReplicaListener -------------------------------------------------------

struct ReplicaListener::Conn {
  explicit Conn(int fd) : fd(fd) {}
  ~Conn() { ::close(fd); }
  const int fd;
  std::mutex read_mu;  // one thread reads the next request at a time
  std::mutex write_mu;
  std::mutex mu;  // the counts below
  int threads = 0;
  int busy = 0;
  bool authenticated = false;  // set by AcceptLoop before any thread serves it
};

absl::StatusOr<std::unique_ptr<ReplicaListener>> ReplicaListener::Start(const std::string& host,
                                                                        std::string token,
                                                                        int max_threads,
                                                                        Handler handler) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), "0", &hints, &found); rc != 0) {
    return absl::InvalidArgumentError("replica listener: bad host '" + host +
                                      "': " + ::gai_strerror(rc));
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok =
      fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0;
  int family = found->ai_family;
  ::freeaddrinfo(found);
  if (!ok) {
    std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError("replica listener cannot listen on " + host + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<ReplicaListener> l(new ReplicaListener());
  l->address_ = (family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  l->token_ = std::move(token);
  l->max_threads_ = std::max(1, max_threads);
  l->handler_ = std::move(handler);
  l->listen_fd_ = fd;
  l->accept_thread_ = std::thread([raw = l.get()] { raw->AcceptLoop(); });
  return l;
}

ReplicaListener::~ReplicaListener() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  accept_thread_.join();
  ::close(listen_fd_);
  std::unique_lock<std::mutex> lock(mu_);
  for (auto& [raw, weak] : conns_) {
    if (auto c = weak.lock()) ::shutdown(c->fd, SHUT_RDWR);  // wakes its readers
  }
  idle_cv_.wait(lock, [&] { return threads_ == 0; });
}

// One thread accepts and waits for every new connection's token (poll, an
// absolute deadline each); only a connection that presented it gets a
// serving thread. Out of files (EMFILE) it stops accepting for a moment
// instead of spinning.
void ReplicaListener::AcceptLoop() {
  using Clock = std::chrono::steady_clock;
  struct Hello {
    int fd;
    std::string buf;
    Clock::time_point deadline;
  };
  std::vector<Hello> hellos;
  Clock::time_point accept_after{};
  int backoff_ms = 10;
  while (!stopping_) {
    auto now = Clock::now();
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, static_cast<short>(now >= accept_after ? POLLIN : 0), 0});
    for (const auto& h : hellos) fds.push_back({h.fd, POLLIN, 0});
    int n = ::poll(fds.data(), fds.size(), 50);
    if (stopping_) break;
    if (n < 0 && errno != EINTR) break;
    now = Clock::now();
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          LUMEN_LOG_WARN("serve: replica {} cannot accept ({}); pausing {} ms", address_,
                         strerror(errno), backoff_ms);
          accept_after = now + std::chrono::milliseconds(backoff_ms);
          backoff_ms = std::min(backoff_ms * 2, 1'000);
        }
      } else {
        backoff_ms = 10;
        if (hellos.size() >= kMaxUnauthenticated) {
          // Too many strangers at once: the one waiting longest goes, so
          // silent connections cannot lock real callers out.
          ::close(hellos.front().fd);
          hellos.erase(hellos.begin());
          fds.erase(fds.begin() + 1);
        }
        hellos.push_back({fd, "", now + std::chrono::seconds(kHelloTimeoutS)});
        fds.push_back({fd, 0, 0});
      }
    }
    // fds[i + 1] is hellos[i]; walk backwards so erasing keeps the pairing.
    for (size_t i = hellos.size(); i-- > 0;) {
      Hello& h = hellos[i];
      bool drop = now >= h.deadline;
      bool ready = false;
      if (!drop && (fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
        // Exactly the hello frame: bytes after it are requests.
        size_t want = kHeaderBytes;
        if (h.buf.size() >= kHeaderBytes) {
          uint32_t len = 0;
          for (int k = 0; k < 4; ++k)
            len |= static_cast<uint32_t>(static_cast<unsigned char>(h.buf[k])) << (8 * k);
          uint64_t id = 0;
          for (int k = 0; k < 8; ++k)
            id |= static_cast<uint64_t>(static_cast<unsigned char>(h.buf[4 + k])) << (8 * k);
          if (len > kMaxHelloBytes || id != 0) drop = true;
          want = kHeaderBytes + len;
        }
        if (!drop && h.buf.size() < want) {
          char tmp[kMaxHelloBytes + kHeaderBytes];
          ssize_t got = ::recv(h.fd, tmp, want - h.buf.size(), 0);
          if (got > 0) {
            h.buf.append(tmp, static_cast<size_t>(got));
          } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            drop = true;
          }
        }
        if (!drop && h.buf.size() >= kHeaderBytes) {
          uint32_t len = 0;
          for (int k = 0; k < 4; ++k)
            len |= static_cast<uint32_t>(static_cast<unsigned char>(h.buf[k])) << (8 * k);
          if (len > kMaxHelloBytes) {
            drop = true;
          } else if (h.buf.size() == kHeaderBytes + len) {
            if (SameToken(h.buf.substr(kHeaderBytes), token_)) {
              ready = true;
            } else {
              LUMEN_LOG_WARN("serve: a connection to replica {} sent a wrong cluster token; closed",
                             address_);
              drop = true;
            }
          }
        }
      }
      if (ready) {
        int fd = h.fd;
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        TuneSocket(fd);
        auto conn = std::make_shared<Conn>(fd);
        conn->authenticated = true;
        std::lock_guard<std::mutex> lock(conn->mu);
        Spawn(conn);
      } else if (drop) {
        ::close(h.fd);
      }
      if (ready || drop) hellos.erase(hellos.begin() + static_cast<long>(i));
    }
  }
  for (auto& h : hellos) ::close(h.fd);
}

bool ReplicaListener::Spawn(std::shared_ptr<Conn> conn) {  // conn->mu held
  conn->threads++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads_++;
    conns_[conn.get()] = conn;
  }
  try {
    std::thread([this, conn] { Serve(conn); }).detach();
    return true;
  } catch (const std::system_error& e) {  // out of threads: the others carry on
    LUMEN_LOG_WARN("serve: replica {} cannot start a thread: {}", address_, e.what());
    bool last = --conn->threads == 0;
    std::lock_guard<std::mutex> lock(mu_);
    if (last) conns_.erase(conn.get());
    threads_--;
    idle_cv_.notify_all();
    return false;
  }
}

void ReplicaListener::Serve(std::shared_ptr<Conn> conn) {
  uint64_t id = 0;
  std::string payload;
  while (!stopping_) {
    {
      std::lock_guard<std::mutex> read(conn->read_mu);
      if (!ReadFrame(conn->fd, &id, &payload)) break;  // the token came already (AcceptLoop)
      // Keep a thread waiting for the next request while this one runs.
      std::lock_guard<std::mutex> lock(conn->mu);
      if (++conn->busy == conn->threads && conn->threads < max_threads_) Spawn(conn);
    }
    Request request;
    absl::Status parsed =
        lumen::internal::DeserializeInto(payload.data(), payload.size(), &request, "the request");
    Response response = parsed.ok() ? handler_(std::move(request))
                                    : Response::Error(400, std::string(parsed.message()));
    std::string answer = lumen::internal::Serialize(response);
    if (answer.size() > kMaxPayloadBytes) {
      answer = lumen::internal::Serialize(Response::Error(
          500, "the answer is " + std::to_string(answer.size()) + " bytes; at most " +
                   std::to_string(kMaxPayloadBytes) + " go through the serving data plane"));
    }
    std::string frame = Frame(id, answer);
    bool written;
    {
      std::lock_guard<std::mutex> write(conn->write_mu);
      written = WriteAll(conn->fd, frame);
    }
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->busy--;
    if (!written) break;
  }
  ::shutdown(conn->fd, SHUT_RDWR);  // the connection's other threads stop too
  bool last;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    last = --conn->threads == 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (last) conns_.erase(conn.get());
  conn.reset();  // the last thread closes the socket
  threads_--;
  idle_cv_.notify_all();
}

// ---- ReplicaChannel --------------------------------------------------------

struct ReplicaChannel::State {
  std::string address;
  std::string token;
  std::mutex write_mu;  // taken before mu; held while writing
  mutable std::mutex mu;
  int fd = -1;
  bool connected = false;
  bool broken = false;
  bool stopping = false;
  uint64_t next_id = 1;
  std::unordered_map<uint64_t, Done> pending;
  std::string queued;  // frames written once connected

  void Run();
  void Close(const absl::Status& why);
};

ReplicaChannel::ReplicaChannel(std::string address, std::string token)
    : state_(std::make_shared<State>()) {
  state_->address = std::move(address);
  state_->token = std::move(token);
  reader_ = std::thread([s = state_] { s->Run(); });
}

ReplicaChannel::~ReplicaChannel() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    if (state_->fd >= 0) ::shutdown(state_->fd, SHUT_RDWR);
  }
  if (reader_.get_id() == std::this_thread::get_id()) {
    reader_.detach();  // dropped from one of its own answers: it ends by itself
  } else {
    reader_.join();
  }
}

const std::string& ReplicaChannel::address() const { return state_->address; }

bool ReplicaChannel::broken() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->broken;
}

size_t ReplicaChannel::in_flight() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->pending.size();
}

void ReplicaChannel::Call(const Request& request, Done done) {
  std::string payload = lumen::internal::Serialize(request);
  if (payload.size() > kMaxPayloadBytes) {
    done(absl::ResourceExhaustedError("the request is " + std::to_string(payload.size()) +
                                      " bytes; at most " + std::to_string(kMaxPayloadBytes) +
                                      " go through the serving data plane"));
    return;
  }
  State& s = *state_;
  std::unique_lock<std::mutex> write(s.write_mu);
  std::unique_lock<std::mutex> lock(s.mu);
  if (s.broken) {
    lock.unlock();
    write.unlock();
    done(absl::UnavailableError("the connection to the replica at " + s.address + " is lost"));
    return;
  }
  uint64_t id = s.next_id++;
  s.pending.emplace(id, std::move(done));
  std::string frame = Frame(id, payload);
  if (!s.connected) {
    s.queued += frame;
    return;
  }
  int fd = s.fd;
  lock.unlock();
  if (!WriteAll(fd, frame)) ::shutdown(fd, SHUT_RDWR);  // the reader answers what is in flight
}

void ReplicaChannel::State::Run() {
  auto connected_fd = Connect(address, kConnectTimeoutMs);
  if (!connected_fd.ok()) {
    Close(connected_fd.status());
    return;
  }
  {
    std::lock_guard<std::mutex> write(write_mu);
    std::string out;
    {
      std::lock_guard<std::mutex> lock(mu);
      fd = *connected_fd;
      if (stopping) ::shutdown(fd, SHUT_RDWR);
      connected = true;
      out = Frame(0, token) + std::move(queued);
      queued.clear();
    }
    if (!WriteAll(fd, out)) ::shutdown(fd, SHUT_RDWR);
  }
  uint64_t id = 0;
  std::string payload;
  while (ReadFrame(fd, &id, &payload)) {
    Done done;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = pending.find(id);
      if (it == pending.end()) continue;  // not ours: ignore
      done = std::move(it->second);
      pending.erase(it);
    }
    Response response;
    absl::Status s = lumen::internal::DeserializeInto(payload.data(), payload.size(), &response,
                                                      "the answer of the replica at " + address);
    done(s.ok() ? absl::StatusOr<Response>(std::move(response)) : s);
  }
  Close(absl::UnavailableError("the connection to the replica at " + address + " was lost"));
}

void ReplicaChannel::State::Close(const absl::Status& why) {
  std::unordered_map<uint64_t, Done> lost;
  bool cancelled;
  {
    std::lock_guard<std::mutex> write(write_mu);  // no writer holds the socket now
    std::lock_guard<std::mutex> lock(mu);
    broken = true;
    lost.swap(pending);
    queued.clear();
    if (fd >= 0) ::close(fd);
    fd = -1;
    connected = false;
    cancelled = stopping;
  }
  absl::Status status =
      cancelled ? absl::CancelledError("the channel to " + address + " was closed") : why;
  for (auto& [id, done] : lost) done(status);
}

}  // namespace lumen::serve
