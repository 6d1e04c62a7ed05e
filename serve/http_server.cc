// HTTP/1.1 server on Boost.Beast; see http_server.h.
#include "serve/http_server.h"

#include "rpc/tls.h"
#include "serve/http_parse.h"

#include "absl/strings/ascii.h"

#include <sys/socket.h>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>
#include <type_traits>

namespace lumen::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Answers up to this size are written from the thread that made them.
constexpr size_t kDirectAnswerBytes = 64 << 10;

// What all sessions of one server share: the counters behind its bounds.
struct Shared {
  const HttpServer::Options* options;
  HttpServer::Handler* handler;
  std::atomic<size_t> connections{0};
  std::atomic<size_t> body_bytes{0};
  std::atomic<bool> stopped{false};  // replies from here on are dropped

  // Takes `n` bytes of the body budget; false when they would pass it.
  bool Reserve(size_t n) {
    size_t held = body_bytes.load();
    do {
      if (held + n > options->body_budget_bytes) return false;
    } while (!body_bytes.compare_exchange_weak(held, held + n));
    return true;
  }
  void Release(size_t n) { body_bytes.fetch_sub(n); }
};

// One connection: plaintext (Stream = beast::tcp_stream) or TLS
// (beast::ssl_stream over one).
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  Session(tcp::socket socket, Shared* shared) : stream_(std::move(socket)), shared_(shared) {}
  Session(tcp::socket socket, net::ssl::context& ssl, Shared* shared)
      : stream_(std::move(socket), ssl), shared_(shared) {}

  // TLS: the handshake first, within the header deadline.
  void Begin() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      Read();
    } else {
      Deadline(options().header_timeout_s);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->Read();
                              });
    }
  }
  ~Session() {
    ReleaseBody();
    shared_->connections.fetch_sub(1);
  }

  // Waits for a request's first byte (idle keep-alive), then reads it.
  void Read() {
    parser_.emplace();
    parser_->body_limit(options().max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes));
    if (buffer_.size() > 0) return ReadHeader();  // pipelined: already here
    Deadline(options().idle_timeout_s);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

 private:
  const HttpServer::Options& options() const { return *shared_->options; }
  void Deadline(int seconds) {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(seconds));
  }

  // The whole head must arrive within header_timeout_s of its first byte:
  // a byte now and then does not keep a connection.
  void ReadHeader() {
    Deadline(options().header_timeout_s);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    const auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    head_ = msg.method() == http::verb::head;
    if (options().on_headers) {
      if (std::optional<Response> refused = options().on_headers(ToRequest(msg))) {
        return Refuse(std::move(*refused));
      }
    }
    if (!parser_->is_done()) {
      // A body to come: its bytes count against the server's budget until
      // the request is answered. A chunked body may grow to the limit.
      auto length = parser_->content_length();  // boost::optional
      size_t want = length ? static_cast<size_t>(*length) : options().max_body_bytes;
      if (want > options().max_body_bytes) {
        return OnRead(http::error::body_limit);
      }
      if (!shared_->Reserve(want)) {
        Response busy = Response::Error(
            503, "the server holds as many request bodies as it may; retry shortly");
        busy.headers["retry-after"] = "1";
        return Refuse(std::move(busy));
      }
      reserved_ = want;
    }
    Deadline(options().body_timeout_s);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // Answers without reading the body, then closes (the unread body would
  // otherwise be taken for the next request).
  void Refuse(Response r) {
    keep_alive_ = false;
    Write(std::move(r));
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      Close();
      return;
    }
    if (ec) {  // the bytes are not a request we can read
      keep_alive_ = false;
      version_ = 11;
      int status = ec == http::error::body_limit     ? 413
                   : ec == http::error::header_limit ? 431
                                                     : 400;
      std::string why =
          ec == http::error::body_limit
              ? "the body is larger than " + std::to_string(options().max_body_bytes) + " bytes"
          : ec == http::error::header_limit
              ? "the headers are larger than " + std::to_string(options().max_header_bytes) +
                    " bytes"
              : "malformed HTTP request: " + ec.message();
      Write(Response::Error(status, why));
      return;
    }
    const auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    (*shared_->handler)(ToRequest(msg),
                        [self = shared_from_this()](Response r) { self->Answer(std::move(r)); });
  }

  // From the thread that answers, exactly once; nothing else touches the
  // session meanwhile (no read or write is pending). A small plaintext
  // answer goes straight to the socket from that thread, as far as the
  // socket takes it without blocking, so the client has it without waiting
  // for an I/O thread to wake; the rest, and what follows, on the I/O
  // thread.
  void Answer(Response r) {
    if (shared_->stopped.load()) return;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      if (r.chunks.empty() && r.body.size() <= kDirectAnswerBytes) return SendNow(std::move(r));
    }
    net::post(stream_.get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
      self->Write(std::move(r));
    });
  }

  void ReleaseBody() {
    if (reserved_ > 0) shared_->Release(reserved_);
    reserved_ = 0;
  }

  std::shared_ptr<http::response<http::string_body>> Whole(Response r) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive_);
    res->body() = head_ ? "" : std::move(r.body);
    res->prepare_payload();
    return res;
  }

  void SendNow(Response r) {
    ReleaseBody();
    auto res = Whole(std::move(r));
    auto wire = std::make_shared<std::string>();
    http::response_serializer<http::string_body> sr(*res);
    beast::error_code ec;
    while (!ec && !sr.is_done()) {
      sr.next(ec, [&](beast::error_code&, const auto& buffers) {
        for (auto b : beast::buffers_range_ref(buffers)) {
          wire->append(static_cast<const char*>(b.data()), b.size());
        }
        sr.consume(net::buffer_size(buffers));
      });
    }
    int fd = beast::get_lowest_layer(stream_).socket().native_handle();
    ssize_t n = ec ? -1 : ::send(fd, wire->data(), wire->size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) wire->erase(0, static_cast<size_t>(n));
    // What follows (the next read, or the rest and then it) on the I/O
    // thread; the client already has a whole answer when `wire` is empty.
    net::post(stream_.get_executor(), [self = shared_from_this(), wire] {
      if (wire->empty()) return self->AfterWrite({});
      self->Deadline(self->options().body_timeout_s);
      net::async_write(self->stream_, net::buffer(*wire),
                       [self, wire](beast::error_code ec2, size_t) { self->AfterWrite(ec2); });
    });
  }

  void Write(Response r) {
    ReleaseBody();  // the request is answered: its body is no longer held
    Deadline(options().body_timeout_s);
    if (r.chunks.empty()) {
      auto res = Whole(std::move(r));
      http::async_write(
          stream_, *res,
          [self = shared_from_this(), res](beast::error_code ec, size_t) { self->AfterWrite(ec); });
      return;
    }
    // A stream: the head, then each piece as one chunk.
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(r.status), version_);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive_);
    res->chunked(true);
    auto wire = std::make_shared<std::string>();
    auto add = [&](const std::string& piece) {
      if (piece.empty()) return;
      char size[20];
      snprintf(size, sizeof(size), "%zx\r\n", piece.size());
      *wire += size;
      *wire += piece;
      *wire += "\r\n";
    };
    add(r.body);
    for (const auto& c : r.chunks) add(c);
    *wire += "0\r\n\r\n";
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    http::async_write_header(
        stream_, *sr, [self = shared_from_this(), res, sr, wire](beast::error_code ec, size_t) {
          if (ec) return self->Close();
          net::async_write(self->stream_, net::buffer(*wire),
                           [self, wire](beast::error_code ec2, size_t) { self->AfterWrite(ec2); });
        });
  }

  void AfterWrite(beast::error_code ec) {
    if (ec || !keep_alive_) return Close();
    Read();
  }

  void Close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Shared* shared_;
  size_t reserved_ = 0;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned version_ = 11;
};

}  // namespace

struct HttpServer::Impl {
  net::io_context io;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  Shared shared;
  std::optional<net::ssl::context> ssl;  // set: connections speak TLS
  std::function<void()> accept;
  std::optional<net::steady_timer> backoff;
  int backoff_ms = 0;
};

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)), impl_(std::make_unique<Impl>()) {
  impl_->shared.options = &options_;
  impl_->shared.handler = &handler_;
}

size_t HttpServer::connections() const { return impl_->shared.connections.load(); }
size_t HttpServer::body_bytes_held() const { return impl_->shared.body_bytes.load(); }

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  impl_->shared.stopped.store(true);
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  beast::error_code ignored;
  if (impl_->acceptor) impl_->acceptor->close(ignored);
}

absl::Status HttpServer::Start() {
  if (!options_.tls_cert_pem.empty()) {
    try {
      auto& ssl = impl_->ssl.emplace(net::ssl::context::tls_server);
      ssl.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                      net::ssl::context::no_tlsv1_1);
      ssl.use_certificate_chain(net::buffer(options_.tls_cert_pem));
      ssl.use_private_key(net::buffer(options_.tls_key_pem), net::ssl::context::pem);
    } catch (const std::exception& e) {
      impl_->ssl.reset();
      return absl::InvalidArgumentError(std::string("TLS certificate or key unusable: ") +
                                        e.what() + " (want PEM, the key matching the certificate)");
    }
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) {
    return absl::InvalidArgumentError("bad host '" + options_.host + "': " + ec.message() +
                                      " (use an IP address such as 127.0.0.1)");
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  auto& acc = impl_->acceptor.emplace(impl_->io);
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("cannot listen on " + options_.host + ":" +
                                  std::to_string(options_.port) + ": " + ec.message() +
                                  " (is another server using the port?)");
  }
  port_ = acc.local_endpoint().port();
  // The accept loop lives in Impl (not in a shared_ptr that holds itself).
  impl_->accept = [this] {
    auto* accept_loop = &impl_->accept;
    impl_->acceptor->async_accept(
        net::make_strand(impl_->io), [this, accept_loop](beast::error_code ec, tcp::socket socket) {
          if (ec == net::error::operation_aborted) return;
          if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
              ec == net::error::no_memory || ec.value() == ENFILE) {
            // Out of file descriptors: wait (10 ms doubling to 1 s) instead
            // of spinning on accept, so what is open can finish and close.
            impl_->backoff_ms = std::min(1000, std::max(10, impl_->backoff_ms * 2));
            impl_->backoff.emplace(impl_->io, std::chrono::milliseconds(impl_->backoff_ms));
            impl_->backoff->async_wait([accept_loop](beast::error_code wait_ec) {
              if (!wait_ec) (*accept_loop)();
            });
            return;
          }
          impl_->backoff_ms = 0;
          if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            if (impl_->shared.connections.fetch_add(1) >= options_.max_connections) {
              impl_->shared.connections.fetch_sub(1);
              // A short answer the fresh socket's buffer takes at once.
              static constexpr char kBusy[] =
                  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                  "Retry-After: 1\r\nConnection: close\r\nContent-Length: 32\r\n\r\n"
                  "too many connections; retry soon";
              socket.non_blocking(true, ec);
              socket.write_some(net::buffer(kBusy, sizeof(kBusy) - 1), ec);
              socket.shutdown(tcp::socket::shutdown_both, ec);
              socket.close(ec);
            } else {
              if (impl_->ssl) {
                std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                    std::move(socket), *impl_->ssl, &impl_->shared)
                    ->Begin();
              } else {
                std::make_shared<Session<beast::tcp_stream>>(std::move(socket), &impl_->shared)
                    ->Begin();
              }
            }
          }
          (*accept_loop)();
        });
  };
  impl_->accept();
  impl_->work.emplace(impl_->io.get_executor());
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { impl_->io.run(); });
  }
  return absl::OkStatus();
}

std::function<void()> HttpServer::After(int64_t delay_ms, std::function<void()> fn) {
  auto timer = std::make_shared<net::steady_timer>(impl_->io, std::chrono::milliseconds(delay_ms));
  timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
    if (!ec) fn();
  });
  // Timers are not thread-safe: cancel on the I/O threads.
  std::weak_ptr<net::steady_timer> weak = timer;
  return [this, weak] {
    net::post(impl_->io, [weak] {
      if (auto t = weak.lock()) t->cancel();
    });
  };
}

namespace {

absl::StatusOr<ServeTls> LoadServeTls() {
  const char* cert = std::getenv("LUMEN_SERVE_TLS_CERT");
  const char* key = std::getenv("LUMEN_SERVE_TLS_KEY");
  bool has_cert = cert != nullptr && *cert != '\0', has_key = key != nullptr && *key != '\0';
  if (!has_cert && !has_key) return ServeTls{};
  if (!has_cert || !has_key) {
    return absl::InvalidArgumentError(
        "serve TLS needs both LUMEN_SERVE_TLS_CERT and LUMEN_SERVE_TLS_KEY (PEM files)");
  }
  ServeTls tls;
  auto c = rpc::ReadPemFile("LUMEN_SERVE_TLS_CERT", cert);
  if (!c.ok()) return c.status();
  auto k = rpc::ReadPemFile("LUMEN_SERVE_TLS_KEY", key);
  if (!k.ok()) return k.status();
  tls.cert_pem = std::move(*c);
  tls.key_pem = std::move(*k);
  return tls;
}

}  // namespace

const absl::StatusOr<ServeTls>& ServeTlsFromEnv() {
  static const absl::StatusOr<ServeTls> tls = LoadServeTls();
  return tls;
}

}  // namespace lumen::serve
