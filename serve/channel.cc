// The serving data plane on Boost.Asio; see channel.h.
#include "serve/channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <deque>
#include <list>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "rpc/tls.h"
#include "serve/frame.h"

namespace lumen::serve {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

constexpr uint32_t kMaxPayloadBytes = 1u << 30;  // one request or answer
constexpr uint32_t kMaxHelloBytes = 4096;        // before the token matched
constexpr int kConnectTimeoutMs = 3'000;
constexpr int kSendTimeoutS = 30;   // a peer that stopped reading is lost
constexpr int kHelloTimeoutS = 10;  // to present the token, from accept (absolute)
// Connections that have not presented the token yet; beyond it the one
// waiting longest is closed. They cost a socket and 12 bytes each, no thread.
constexpr size_t kMaxUnauthenticated = 256;
// Requests of one connection read and not yet answered, per serving
// thread; beyond it the connection is not read until some are answered.
constexpr int kUnansweredPerThread = 4;
// Threads that run every channel's socket work in a caller process.
constexpr int kCallerIoThreads = 2;

// No Nagle delay; a peer that stops reading, or whose host vanished
// without closing (keepalive probes and unacknowledged data give up after
// about 30 s), is a lost connection.
void TuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

// A replica listener's threads, leader and followers: one thread at a
// time (the leader) waits on the sockets and runs their I/O handlers; a
// request it reads, it hands the lead to an idle thread and runs itself,
// so no thread has to wake between a request's bytes arriving and its
// handler starting. At most `max_running` requests run at once (a replica
// of one thread runs them one at a time); beyond that they queue, in
// order, for the next thread free.
class Crew {
 public:
  Crew(net::io_context& io, int max_running) : io_(io), max_running_(max_running) {}
  ~Crew() { Stop(); }
  void Start() {
    for (int i = 0; i <= max_running_; ++i) threads_.emplace_back([this] { Run(); });
  }
  bool started() const { return !threads_.empty(); }
  // From an I/O handler (so on the leader): runs `fn` as a request.
  void Give(std::function<void()> fn) {
    if (!handed_) {
      handed_ = std::move(fn);
      return;
    }
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
  }
  // Drops the requests not started, waits for those that run, and stops
  // the I/O. Not from a crew thread.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      queue_.clear();
      cv_.SignalAll();
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Run() {
    mu_.Lock();
    while (!stopping_) {
      std::function<void()> fn;
      if (!queue_.empty() && running_ < max_running_) {
        fn = std::move(queue_.front());
        queue_.pop_front();
      } else if (!led_) {
        led_ = true;
        mu_.Unlock();
        while (!fn && io_.run_one() > 0) fn = std::exchange(handed_, nullptr);
        mu_.Lock();
        led_ = false;
        if (!fn) continue;  // stopped
        if (running_ >= max_running_) {
          queue_.push_back(std::move(fn));
          continue;
        }
        cv_.Signal();  // a follower takes the lead
      } else {
        cv_.Wait(&mu_);
        continue;
      }
      running_++;
      mu_.Unlock();
      fn();
      fn = nullptr;  // its captures go before the next wait
      mu_.Lock();
      running_--;
    }
    mu_.Unlock();
  }

  net::io_context& io_;
  const int max_running_;
  // Keeps run_one() waiting while the sockets are all closed, until Stop.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{io_.get_executor()};
  std::function<void()> handed_;  // the leader's alone
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool led_ ABSL_GUARDED_BY(mu_) = false;  // a thread is the leader
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // the owner's thread only
};

// The socket threads every ReplicaChannel of this process shares. Lives to
// the end of the process (channels are made and dropped at any time).
net::io_context& CallerIo() {
  struct Io {
    net::io_context io;
    net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    Io() {
      for (int i = 0; i < kCallerIoThreads; ++i) {
        threads.emplace_back([this] { io.run(); });
        threads.back().detach();
      }
    }
  };
  static Io* io = new Io();
  return io->io;
}

// A connection's byte stream: the TCP socket itself, or TLS over it.
class Wire {
 public:
  explicit Wire(tcp::socket s) : plain_(std::move(s)) {}
  Wire(tcp::socket s, net::ssl::context& ctx) : tls_(std::in_place, std::move(s), ctx) {}
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
  bool tls() const { return tls_.has_value(); }
  net::ssl::stream<tcp::socket>& tls_stream() { return *tls_; }
  template <typename Buffers, typename Handler>
  void Read(const Buffers& buffers, Handler handler) {
    if (tls_) {
      net::async_read(*tls_, buffers, std::move(handler));
    } else {
      net::async_read(*plain_, buffers, std::move(handler));
    }
  }
  template <typename Buffers, typename Handler>
  void Write(const Buffers& buffers, Handler handler) {
    if (tls_) {
      net::async_write(*tls_, buffers, std::move(handler));
    } else {
      net::async_write(*plain_, buffers, std::move(handler));
    }
  }
  void Close() {
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

 private:
  std::optional<tcp::socket> plain_;
  std::optional<net::ssl::stream<tcp::socket>> tls_;
};

// TLS for the data plane: the cluster's certificates (rpc/tls.h,
// LUMEN_TLS_*), mutual as for gRPC. Made once per process.
struct DataPlaneTls {
  std::optional<net::ssl::context> server;  // set: TLS on
  std::optional<net::ssl::context> client;
  std::string server_name;
  std::string error;  // the settings are unusable
};

DataPlaneTls& Tls() {
  static DataPlaneTls* tls = [] {
    auto* t = new DataPlaneTls();
    const auto& config = rpc::TlsFromEnv();
    if (!config.ok()) {
      t->error = std::string(config.status().message());
      return t;
    }
    if (!config->enabled()) return t;
    t->server_name = config->server_name;
    try {
      for (auto kind : {net::ssl::context::tls_server, net::ssl::context::tls_client}) {
        net::ssl::context ctx(kind);
        ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                        net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                        net::ssl::context::no_tlsv1_1);
        ctx.use_certificate_chain(net::buffer(config->cert_pem));
        ctx.use_private_key(net::buffer(config->key_pem), net::ssl::context::pem);
        ctx.add_certificate_authority(net::buffer(config->ca_pem));
        ctx.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
        (kind == net::ssl::context::tls_server ? t->server : t->client).emplace(std::move(ctx));
      }
    } catch (const std::exception& e) {
      t->server.reset();
      t->client.reset();
      t->error = std::string("TLS certificates unusable for the data plane: ") + e.what();
    }
    return t;
  }();
  return *tls;
}

}  // namespace

// ---- ReplicaListener -------------------------------------------------------

// One connection. Reading is the leader's alone (the crew thread doing the
// I/O, "the I/O thread" below); answers are written by the thread that made
// them when nothing else is being written (one non-blocking send), else
// queued for the I/O thread. `mu` orders those writes and the close.
struct ReplicaListener::Conn {
  explicit Conn(Wire w) : wire(std::move(w)), hello_timer(wire.socket().get_executor()) {}
  Wire wire;
  net::steady_timer hello_timer;  // I/O thread
  unsigned char header[kFrameHeaderBytes] = {};
  std::string payload;
  bool authenticated = false;
  std::atomic<int> unanswered{0};  // read, and the answer not written yet
  // Set by the I/O thread when it stopped reading for too many unanswered;
  // whoever clears it (exchange) resumes reading.
  std::atomic<bool> read_paused{false};
  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::deque<std::string> out ABSL_GUARDED_BY(mu);  // the front is being written
  bool writing ABSL_GUARDED_BY(mu) = false;         // an async write of the front runs
};

struct ReplicaListener::Impl {
  Impl(std::string token, int max_threads, Handler handler)
      : token(std::move(token)),
        max_threads(max_threads),
        handler(std::move(handler)),
        acceptor(io),
        backoff(io),
        crew(io, max_threads) {}

  void Accept();
  void ReadHeader(const std::shared_ptr<Conn>& c);
  void OnFrame(const std::shared_ptr<Conn>& c, uint64_t id);
  void Answer(const std::shared_ptr<Conn>& c, std::string frame);  // any thread
  void Answered(const std::shared_ptr<Conn>& c);                   // any thread
  void WriteNext(const std::shared_ptr<Conn>& c);
  void Close(const std::shared_ptr<Conn>& c);
  void StopOnIo();

  std::string address;
  const std::string token;
  const int max_threads;
  const Handler handler;
  net::io_context io;
  tcp::acceptor acceptor;
  net::steady_timer backoff;
  int backoff_ms = 10;
  std::set<std::shared_ptr<Conn>> conns;
  std::list<std::weak_ptr<Conn>> waiting;  // not authenticated yet, oldest first
  Crew crew;                               // last: its threads go first
};

absl::StatusOr<std::unique_ptr<ReplicaListener>> ReplicaListener::Start(const std::string& host,
                                                                        std::string token,
                                                                        int max_threads,
                                                                        Handler handler) {
  error_code ec;
  net::ip::address ip = net::ip::make_address(host, ec);
  if (ec) {
    // A name: its first address.
    net::io_context resolve_io;
    tcp::resolver resolver(resolve_io);
    auto found = resolver.resolve(host, "0", ec);
    if (ec || found.empty()) {
      return absl::InvalidArgumentError("replica listener: bad host '" + host +
                                        "': " + (ec ? ec.message() : "no address"));
    }
    ip = found.begin()->endpoint().address();
  }
  if (!Tls().error.empty()) return absl::InvalidArgumentError(Tls().error);
  std::unique_ptr<ReplicaListener> l(new ReplicaListener());
  l->impl_ = std::make_unique<Impl>(std::move(token), std::max(1, max_threads), std::move(handler));
  Impl& impl = *l->impl_;
  tcp::endpoint endpoint(ip, 0);
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("replica listener cannot listen on " + host + ": " +
                                  ec.message());
  }
  int port = impl.acceptor.local_endpoint().port();
  impl.address = (ip.is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
  l->address_ = impl.address;
  impl.Accept();
  impl.crew.Start();
  return l;
}

ReplicaListener::~ReplicaListener() {
  // Close everything on the leader (callers see their connections end),
  // then wait for the requests that run, then stop the I/O.
  std::promise<void> closed;
  net::post(impl_->io, [this, &closed] {
    impl_->StopOnIo();
    closed.set_value();
  });
  if (impl_->crew.started()) closed.get_future().wait();  // else it never served
  impl_->crew.Stop();
}

void ReplicaListener::Impl::StopOnIo() {
  error_code ignored;
  acceptor.close(ignored);
  backoff.cancel();
  std::vector<std::shared_ptr<Conn>> all(conns.begin(), conns.end());
  for (auto& c : all) Close(c);
}

// Accepts; out of files (EMFILE) it stops accepting for a moment (10 ms
// doubling to 1 s) instead of spinning. A new connection waits for its
// token with an absolute deadline and no thread of its own.
void ReplicaListener::Impl::Accept() {
  acceptor.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
          ec == net::error::no_memory || ec.value() == ENFILE) {
        LUMEN_LOG_WARN("serve: replica {} cannot accept ({}); pausing {} ms", address, ec.message(),
                       backoff_ms);
        backoff.expires_after(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min(backoff_ms * 2, 1'000);
        backoff.async_wait([this](error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      Accept();
      return;
    }
    backoff_ms = 10;
    // Too many strangers at once: the one waiting longest goes, so silent
    // connections cannot lock real callers out.
    while (waiting.size() >= kMaxUnauthenticated) {
      auto oldest = waiting.front().lock();
      waiting.pop_front();
      if (oldest) Close(oldest);
    }
    DataPlaneTls& tls = Tls();
    auto c = std::make_shared<Conn>(tls.server ? Wire(std::move(socket), *tls.server)
                                               : Wire(std::move(socket)));
    conns.insert(c);
    waiting.push_back(c);
    // The handshake (with TLS) and the token within one deadline.
    c->hello_timer.expires_after(std::chrono::seconds(kHelloTimeoutS));
    c->hello_timer.async_wait([this, c](error_code wait_ec) {
      if (!wait_ec && !c->authenticated) Close(c);
    });
    if (c->wire.tls()) {
      c->wire.tls_stream().async_handshake(net::ssl::stream_base::server, [this, c](error_code hs) {
        if (hs) return Close(c);
        ReadHeader(c);
      });
    } else {
      ReadHeader(c);
    }
    Accept();
  });
}

void ReplicaListener::Impl::ReadHeader(const std::shared_ptr<Conn>& c) {
  c->wire.Read(net::buffer(c->header), [this, c](error_code ec, size_t) {
    if (ec) return Close(c);
    FrameHeader h = DecodeFrameHeader(c->header);
    // Before the token: only the hello frame (id 0, small). After: any
    // frame up to the payload limit.
    if (!c->authenticated ? (h.length > kMaxHelloBytes || h.id != 0)
                          : h.length > kMaxPayloadBytes) {
      return Close(c);
    }
    c->payload.resize(h.length);
    c->wire.Read(net::buffer(c->payload), [this, c, id = h.id](error_code ec2, size_t) {
      if (ec2) return Close(c);
      OnFrame(c, id);
    });
  });
}

void ReplicaListener::Impl::OnFrame(const std::shared_ptr<Conn>& c, uint64_t id) {
  {
    absl::MutexLock lock(&c->mu);
    if (c->closed) return;
  }
  if (!c->authenticated) {
    if (!SameToken(c->payload, token)) {
      LUMEN_LOG_WARN("serve: a connection to replica {} sent a wrong cluster token; closed",
                     address);
      return Close(c);
    }
    c->authenticated = true;
    c->hello_timer.cancel();
    waiting.remove_if([&](const std::weak_ptr<Conn>& w) { return w.lock() == c; });
    TuneSocket(c->wire.socket().native_handle());
    return ReadHeader(c);
  }
  c->unanswered++;
  crew.Give([this, c, id, payload = std::move(c->payload)] {
    Request request;
    absl::Status parsed =
        lumen::internal::DeserializeInto(payload.data(), payload.size(), &request, "the request");
    Response response;
    if (!parsed.ok()) {
      response = Response::Error(400, std::string(parsed.message()));
    } else {
      try {
        response = handler(std::move(request));
      } catch (const std::exception& e) {
        response = Response::Error(500, std::string("the replica failed: ") + e.what());
      }
    }
    std::string answer = lumen::internal::Serialize(response);
    if (answer.size() > kMaxPayloadBytes) {
      answer = lumen::internal::Serialize(Response::Error(
          500, "the answer is " + std::to_string(answer.size()) + " bytes; at most " +
                   std::to_string(kMaxPayloadBytes) + " go through the serving data plane"));
    }
    Answer(c, EncodeFrame(id, answer));
  });
  c->payload.clear();
  if (c->unanswered < max_threads * kUnansweredPerThread) return ReadHeader(c);
  // Paused; resumes as answers go out. An answer that went out between the
  // count and the flag finds the flag unset: check again.
  c->read_paused = true;
  if (c->unanswered < max_threads * kUnansweredPerThread && c->read_paused.exchange(false)) {
    ReadHeader(c);
  }
}

// Plaintext with nothing queued: straight to the socket from this thread,
// as far as the socket takes it without blocking. The rest (or all, with
// TLS or a write in progress) goes out on the I/O thread.
void ReplicaListener::Impl::Answer(const std::shared_ptr<Conn>& c, std::string frame) {
  bool start = false, sent = false;
  {
    absl::MutexLock lock(&c->mu);
    if (c->closed) return;
    if (!c->writing && c->out.empty() && !c->wire.tls()) {
      ssize_t n = ::send(c->wire.socket().native_handle(), frame.data(), frame.size(),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n == static_cast<ssize_t>(frame.size())) {
        sent = true;
      } else if (n > 0) {
        frame.erase(0, static_cast<size_t>(n));
      }  // else nothing went: the I/O thread's write finds the error, if any
    }
    if (!sent) {
      c->out.push_back(std::move(frame));
      start = !c->writing;
      c->writing = true;
    }
  }
  if (start) net::post(io, [this, c] { WriteNext(c); });
  if (sent) Answered(c);
}

void ReplicaListener::Impl::Answered(const std::shared_ptr<Conn>& c) {
  int left = --c->unanswered;
  if (left < max_threads * kUnansweredPerThread && c->read_paused.exchange(false)) {
    net::post(io, [this, c] { ReadHeader(c); });
  }
}

// On the I/O thread, with `writing` set: writes the front of `out`.
void ReplicaListener::Impl::WriteNext(const std::shared_ptr<Conn>& c) {
  const std::string* front;
  {
    absl::MutexLock lock(&c->mu);
    if (c->closed) return;
    front = &c->out.front();  // stays put as others are queued behind it
  }
  c->wire.Write(net::buffer(*front), [this, c](error_code ec, size_t) {
    bool more = false;
    {
      absl::MutexLock lock(&c->mu);
      if (ec || c->closed) {
        c->writing = false;
        ec = net::error::operation_aborted;
      } else {
        c->out.pop_front();
        more = !c->out.empty();
        c->writing = more;
      }
    }
    if (ec) return Close(c);
    Answered(c);
    if (more) WriteNext(c);
  });
}

void ReplicaListener::Impl::Close(const std::shared_ptr<Conn>& c) {
  {
    absl::MutexLock lock(&c->mu);
    if (c->closed) return;
    c->closed = true;
    c->wire.Close();  // under the lock: no serving thread sends to a closed (reused) fd
  }
  c->hello_timer.cancel();
  conns.erase(c);  // `out` stays until a write in progress completes
  if (!c->authenticated) {
    waiting.remove_if([&](const std::weak_ptr<Conn>& w) { return w.expired() || w.lock() == c; });
  }
}

// ---- ReplicaChannel --------------------------------------------------------

struct ReplicaChannel::State : std::enable_shared_from_this<State> {
  explicit State(net::io_context& io)
      : strand(net::make_strand(io)), socket(strand), timer(strand), resolver(strand) {}

  // On the strand.
  void Connect();
  void Secure();  // TLS handshake, when on; then OnConnected
  void OnConnected();
  void Enqueue(std::string frame);
  void WriteNext();
  void ReadHeader();
  void Close(const absl::Status& why);

  std::string address;
  std::string token;
  net::strand<net::io_context::executor_type> strand;
  // The strand's alone.
  tcp::socket socket;        // until connected
  std::optional<Wire> wire;  // from connected on
  net::steady_timer timer;   // the connect deadline (and the TLS handshake's)
  tcp::resolver resolver;
  bool connected = false;
  bool closed = false;
  std::deque<std::string> out;
  bool writing = false;
  unsigned char header[kFrameHeaderBytes] = {};
  std::string payload;
  // Any thread.
  mutable absl::Mutex mu;
  bool broken ABSL_GUARDED_BY(mu) = false;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  std::unordered_map<uint64_t, Done> pending ABSL_GUARDED_BY(mu);
};

ReplicaChannel::ReplicaChannel(std::string address, std::string token, net::io_context* io)
    : state_(std::make_shared<State>(io != nullptr ? *io : CallerIo())) {
  state_->address = std::move(address);
  state_->token = std::move(token);
  net::post(state_->strand, [s = state_] { s->Connect(); });
}

ReplicaChannel::~ReplicaChannel() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  net::post(state_->strand, [s = state_] {
    s->Close(absl::CancelledError("the channel to " + s->address + " was closed"));
  });
}

const std::string& ReplicaChannel::address() const { return state_->address; }

bool ReplicaChannel::broken() const {
  absl::MutexLock lock(&state_->mu);
  return state_->broken;
}

size_t ReplicaChannel::in_flight() const {
  absl::MutexLock lock(&state_->mu);
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
  uint64_t id = 0;
  bool broken;
  {
    absl::MutexLock lock(&s.mu);
    broken = s.broken;
    if (!broken) {
      id = s.next_id++;
      s.pending.emplace(id, std::move(done));
    }
  }
  if (broken) {
    done(absl::UnavailableError("the connection to the replica at " + s.address + " is lost"));
    return;
  }
  net::post(s.strand, [st = state_, frame = EncodeFrame(id, payload)]() mutable {
    st->Enqueue(std::move(frame));
  });
}

void ReplicaChannel::State::Connect() {
  auto [host, port] = SplitAddress(address);
  timer.expires_after(std::chrono::milliseconds(kConnectTimeoutMs));
  timer.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->connected || self->closed) return;
    self->Close(absl::UnavailableError("cannot connect to replica at " + self->address +
                                       ": no answer in " + std::to_string(kConnectTimeoutMs) +
                                       " ms"));
  });
  resolver.async_resolve(
      host, port,
      [self = shared_from_this()](error_code ec, const tcp::resolver::results_type& found) {
        if (self->closed) return;
        if (ec) {
          return self->Close(absl::UnavailableError("cannot resolve replica address " +
                                                    self->address + ": " + ec.message()));
        }
        net::async_connect(self->socket, found, [self](error_code ec2, const tcp::endpoint&) {
          if (self->closed) return;
          if (ec2) {
            return self->Close(absl::UnavailableError("cannot connect to replica at " +
                                                      self->address + ": " + ec2.message()));
          }
          self->Secure();
        });
      });
}

void ReplicaChannel::State::Secure() {
  DataPlaneTls& tls = Tls();
  if (!tls.error.empty()) return Close(absl::UnavailableError(tls.error));
  if (!tls.client) {
    wire.emplace(std::move(socket));
    return OnConnected();
  }
  wire.emplace(std::move(socket), *tls.client);
  wire->tls_stream().set_verify_callback(net::ssl::host_name_verification(tls.server_name));
  wire->tls_stream().async_handshake(
      net::ssl::stream_base::client, [self = shared_from_this()](error_code ec) {
        if (self->closed) return;
        if (ec) {
          return self->Close(absl::UnavailableError("TLS with the replica at " + self->address +
                                                    " failed: " + ec.message()));
        }
        self->OnConnected();
      });
}

void ReplicaChannel::State::OnConnected() {
  connected = true;
  timer.cancel();
  TuneSocket(wire->socket().native_handle());
  out.push_front(EncodeFrame(0, token));  // the token before any request
  if (!writing) WriteNext();
  ReadHeader();
}

void ReplicaChannel::State::Enqueue(std::string frame) {
  if (closed) return;  // Close answered its call already
  out.push_back(std::move(frame));
  if (connected && !writing) WriteNext();
}

void ReplicaChannel::State::WriteNext() {
  writing = true;
  wire->Write(net::buffer(out.front()), [self = shared_from_this()](error_code ec, size_t) {
    self->writing = false;
    if (self->closed) return;
    if (ec) {
      return self->Close(absl::UnavailableError("the connection to the replica at " +
                                                self->address + " was lost"));
    }
    self->out.pop_front();
    if (!self->out.empty()) self->WriteNext();
  });
}

void ReplicaChannel::State::ReadHeader() {
  wire->Read(net::buffer(header), [self = shared_from_this()](error_code ec, size_t) {
    auto lost = [&] {
      self->Close(absl::UnavailableError("the connection to the replica at " + self->address +
                                         " was lost"));
    };
    if (ec || self->closed) return lost();
    FrameHeader h = DecodeFrameHeader(self->header);
    if (h.length > kMaxPayloadBytes) return lost();
    self->payload.resize(h.length);
    self->wire->Read(net::buffer(self->payload), [self, id = h.id](error_code ec2, size_t) {
      if (ec2 || self->closed) {
        return self->Close(absl::UnavailableError("the connection to the replica at " +
                                                  self->address + " was lost"));
      }
      Done done;
      {
        absl::MutexLock lock(&self->mu);
        auto it = self->pending.find(id);
        if (it != self->pending.end()) {
          done = std::move(it->second);
          self->pending.erase(it);
        }
      }
      if (done) {  // not ours: ignored
        Response response;
        absl::Status s =
            lumen::internal::DeserializeInto(self->payload.data(), self->payload.size(), &response,
                                             "the answer of the replica at " + self->address);
        done(s.ok() ? absl::StatusOr<Response>(std::move(response)) : s);
      }
      self->ReadHeader();
    });
  });
}

void ReplicaChannel::State::Close(const absl::Status& why) {
  std::unordered_map<uint64_t, Done> lost;
  bool cancelled;
  {
    absl::MutexLock lock(&mu);
    broken = true;
    lost.swap(pending);
    cancelled = stopping;
  }
  if (!closed) {
    closed = true;
    if (wire) {
      wire->Close();
    } else {
      error_code ignored;
      socket.close(ignored);
    }
    timer.cancel();
    resolver.cancel();
  }
  absl::Status status =
      cancelled ? absl::CancelledError("the channel to " + address + " was closed") : why;
  for (auto& [id, done] : lost) done(status);
}

}  // namespace lumen::serve
