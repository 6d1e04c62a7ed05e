// HTTP/1.1 server on Boost.Beast; see http_server.h.
#include "serve/http_server.h"

#include "absl/strings/ascii.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <optional>

namespace lumen::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Request ToRequest(const http::request<http::string_body>& in) {
  Request r;
  r.method = std::string(in.method_string());
  std::string target(in.target());
  size_t q = target.find('?');
  r.path = UrlDecode(target.substr(0, q), false);
  if (q != std::string::npos) {
    std::string query = target.substr(q + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      if (!pair.empty()) {
        size_t eq = pair.find('=');
        r.query[UrlDecode(pair.substr(0, eq), true)] =
            eq == std::string::npos ? "" : UrlDecode(pair.substr(eq + 1), true);
      }
      start = end + 1;
    }
  }
  for (const auto& f : in)
    r.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
  r.body = in.body();
  return r;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServer::Options& options, HttpServer::Handler* handler)
      : stream_(std::move(socket)), options_(options), handler_(handler) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_s));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      Close();
      return;
    }
    if (ec) {  // the bytes are not a request we can read
      keep_alive_ = false;
      version_ = 11;
      int status = ec == http::error::body_limit ? 413 : 400;
      std::string why =
          ec == http::error::body_limit
              ? "the body is larger than " + std::to_string(options_.max_body_bytes) + " bytes"
              : "malformed HTTP request: " + ec.message();
      Write(Response::Error(status, why));
      return;
    }
    const auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    head_ = msg.method() == http::verb::head;
    auto self = shared_from_this();
    auto executor = stream_.get_executor();
    (*handler_)(ToRequest(msg), [self, executor](Response r) {
      net::post(executor, [self, r = std::move(r)]() mutable { self->Write(std::move(r)); });
    });
  }

  void Write(Response r) {
    if (r.chunks.empty()) {
      auto res = std::make_shared<http::response<http::string_body>>(
          static_cast<http::status>(r.status), version_);
      for (const auto& [k, v] : r.headers) res->set(k, v);
      res->keep_alive(keep_alive_);
      res->body() = head_ ? "" : std::move(r.body);
      res->prepare_payload();
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServer::Options& options_;
  HttpServer::Handler* handler_;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned version_ = 11;
};

}  // namespace

std::string UrlDecode(const std::string& s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (query && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

struct HttpServer::Impl {
  net::io_context io;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
};

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)), impl_(std::make_unique<Impl>()) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  beast::error_code ignored;
  if (impl_->acceptor) impl_->acceptor->close(ignored);
}

absl::Status HttpServer::Start() {
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
  auto accept_loop = std::make_shared<std::function<void()>>();
  *accept_loop = [this, accept_loop] {
    impl_->acceptor->async_accept(
        net::make_strand(impl_->io), [this, accept_loop](beast::error_code ec, tcp::socket socket) {
          if (ec == net::error::operation_aborted) return;
          if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<Session>(std::move(socket), options_, &handler_)->Read();
          }
          (*accept_loop)();
        });
  };
  (*accept_loop)();
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

}  // namespace lumen::serve
