// The HTTP server's bounds, against a real server on loopback and raw
// sockets: what a client can make it hold and for how long.
#include "serve/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace lumen::serve {
namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void Send(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

// Reads until the peer closes, `until` shows up, or `timeout` passes.
std::string Receive(int fd, std::chrono::milliseconds timeout, const std::string& until = "") {
  std::string got;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(1, left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (!until.empty() && got.find(until) != std::string::npos) break;
  }
  return got;
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::seconds timeout = std::chrono::seconds(10)) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

std::string Post(const std::string& path, size_t body_bytes, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + extra +
         "Content-Length: " + std::to_string(body_bytes) + "\r\n\r\n";
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Options options) {
    server_ = std::make_unique<HttpServer>(
        std::move(options), [this](Request r, HttpServer::Reply reply) {
          if (r.path == "/hold") {
            std::lock_guard<std::mutex> lock(mu_);
            held_.push_back(std::move(reply));
            return;
          }
          reply(Response::Text("path=" + r.path + " bytes=" + std::to_string(r.body.size())));
        });
    ASSERT_TRUE(server_->Start().ok());
  }
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }
  void ReleaseAll() {
    std::vector<HttpServer::Reply> replies;
    {
      std::lock_guard<std::mutex> lock(mu_);
      replies.swap(held_);
    }
    for (auto& r : replies) r(Response::Text("released"));
  }

  std::mutex mu_;
  std::vector<HttpServer::Reply> held_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, BytesThatAreNotUtf8AreJustAPath) {
  Start({});
  int fd = Connect(server_->port());
  Send(fd, "GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = Receive(fd, std::chrono::seconds(10), "bytes=0");
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  EXPECT_NE(got.find("path=/\xff\xfe"), std::string::npos) << got;
  ::close(fd);
}

TEST_F(HttpServerTest, OnHeadersAnswersBeforeTheBodyIsSent) {
  HttpServer::Options o;
  o.on_headers = [](const Request& head) -> std::optional<Response> {
    if (head.Header("authorization") == "Bearer ok") return std::nullopt;
    return Response::Error(401, "no token");
  };
  Start(o);
  int fd = Connect(server_->port());
  // Announces 10 MB and sends none of it: the answer comes anyway.
  Send(fd, Post("/up", 10'000'000));
  std::string got = Receive(fd, std::chrono::seconds(10));
  EXPECT_NE(got.find("401"), std::string::npos) << got;
  EXPECT_NE(got.find("no token"), std::string::npos) << got;
  ::close(fd);
  fd = Connect(server_->port());
  Send(fd, Post("/up", 3, "Authorization: Bearer ok\r\n") + "abc");
  got = Receive(fd, std::chrono::seconds(10), "bytes=3");
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  ::close(fd);
}

TEST_F(HttpServerTest, BodiesBeyondTheBudgetAre503UnreadAndTheBudgetIsGivenBack) {
  HttpServer::Options o;
  o.body_budget_bytes = 1 << 20;
  Start(o);
  int held = Connect(server_->port());
  Send(held, Post("/hold", 600'000) + std::string(600'000, 'a'));
  ASSERT_TRUE(WaitFor([&] { return Held() == 1; }));
  EXPECT_EQ(server_->body_bytes_held(), 600'000u);

  int over = Connect(server_->port());
  Send(over, Post("/x", 600'000));  // the headers only: refused before the body
  std::string got = Receive(over, std::chrono::seconds(10));
  EXPECT_NE(got.find("503"), std::string::npos) << got;
  EXPECT_NE(got.find("retry-after"), std::string::npos) << got;
  ::close(over);

  ReleaseAll();
  EXPECT_NE(Receive(held, std::chrono::seconds(10), "released").find("released"),
            std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return server_->body_bytes_held() == 0; }));
  int again = Connect(server_->port());
  Send(again, Post("/x", 600'000) + std::string(600'000, 'b'));
  got = Receive(again, std::chrono::seconds(10), "bytes=600000");
  EXPECT_NE(got.find("bytes=600000"), std::string::npos) << got.substr(0, 200);
  ::close(again);
  ::close(held);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheCapAre503AndClosed) {
  HttpServer::Options o;
  o.max_connections = 2;
  Start(o);
  int a = Connect(server_->port());
  int b = Connect(server_->port());
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 2; }));
  int c = Connect(server_->port());
  std::string got = Receive(c, std::chrono::seconds(10));
  EXPECT_NE(got.find("503"), std::string::npos) << got;
  ::close(c);
  // The two admitted ones still work; closing one makes room again.
  Send(a, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(Receive(a, std::chrono::seconds(10), "bytes=0").find("path=/a"), std::string::npos);
  ::close(b);
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 1; }));
  int d = Connect(server_->port());
  Send(d, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(Receive(d, std::chrono::seconds(10), "bytes=0").find("path=/d"), std::string::npos);
  ::close(a);
  ::close(d);
}

// A byte now and then does not keep a connection: the whole head has a
// deadline from its first byte.
TEST_F(HttpServerTest, SlowHeadersAreCutAtTheirDeadline) {
  HttpServer::Options o;
  o.header_timeout_s = 1;
  Start(o);
  int fd = Connect(server_->port());
  Send(fd, "GET / HTTP/1.1\r\n");
  std::atomic<bool> closed{false};
  std::thread drip([&] {
    for (int i = 0; i < 100 && !closed; ++i) {
      Send(fd, "X");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  auto start = Clock::now();
  Receive(fd, std::chrono::seconds(15));  // returns when the server closes
  closed = true;
  drip.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 0; }));
  ::close(fd);
}

TEST_F(HttpServerTest, OversizedHeadersAre431) {
  Start({});
  int fd = Connect(server_->port());
  Send(fd, "GET / HTTP/1.1\r\nX-Big: " + std::string(100'000, 'a') + "\r\n\r\n");
  std::string got = Receive(fd, std::chrono::seconds(10));
  EXPECT_NE(got.find("431"), std::string::npos) << got.substr(0, 200);
  ::close(fd);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// With a certificate the server speaks TLS 1.2+: a client that checks the
// certificate gets its answer; plaintext gets nothing.
TEST_F(HttpServerTest, ServesTlsWithACertificate) {
  std::string dir = "/tmp/lumen_http_tls_" + RandomHex(8);
  ASSERT_TRUE(MakeDirs(dir).ok());
  std::string cmd = "cd " + dir +
                    " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
                    "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << Slurp(dir + "/log");
  HttpServer::Options o;
  o.tls_cert_pem = Slurp(dir + "/cert.pem");
  o.tls_key_pem = Slurp(dir + "/key.pem");
  Start(o);

  namespace net = boost::asio;
  namespace beast = boost::beast;
  net::io_context io;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.add_certificate_authority(net::buffer(o.tls_cert_pem));
  ctx.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
  beast::get_lowest_layer(stream).connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  stream.handshake(net::ssl::stream_base::client);
  beast::http::request<beast::http::string_body> req(beast::http::verb::post, "/secure", 11);
  req.set(beast::http::field::host, "127.0.0.1");
  req.body() = "abc";
  req.prepare_payload();
  beast::http::write(stream, req);
  beast::flat_buffer buffer;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "path=/secure bytes=3");

  int fd = Connect(server_->port());
  Send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = Receive(fd, std::chrono::seconds(15));
  EXPECT_EQ(got.find("200 OK"), std::string::npos) << "plaintext is not served: " << got;
  ::close(fd);
  RemoveAll(dir);
}

// Found by fuzz_json_body: dump() recursed once per level of a body of
// brackets until the stack ran out. Bodies are parsed with a depth bound.
TEST(JsonBodyTest, DeepNestingIsRefusedNotACrash) {
  Request r;
  r.body = std::string(100'000, '[') + std::string(100'000, ']');
  auto j = r.JsonBody();
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("deeper than"), std::string::npos) << j.status();
  r.body = std::string(200, '[') + std::string(200, ']');
  ASSERT_TRUE(r.JsonBody().ok());
  r.body = "{\"a\": ";
  EXPECT_NE(r.JsonBody().status().message().find("not JSON"), std::string::npos);
}

TEST(ParseHttpRequestTest, ParsesOneRequestAndRefusesTheRest) {
  auto r =
      ParseHttpRequest("POST /a%20b?x=1+2&y HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->path, "/a b");
  EXPECT_EQ(r->query.at("x"), "1 2");
  EXPECT_EQ(r->query.at("y"), "");
  EXPECT_EQ(r->body, "hi");
  EXPECT_EQ(r->Header("HOST"), "h");
  EXPECT_FALSE(ParseHttpRequest("GET / HTTP/1.1\r\nHost: h\r\n").ok());  // truncated
  EXPECT_FALSE(ParseHttpRequest("\x01\x02 nonsense\r\n\r\n").ok());
  EXPECT_FALSE(
      ParseHttpRequest("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").ok());
  EXPECT_EQ(ParseHttpRequest("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 4)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(ParseHttpRequest("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n").ok());  // two
}

}  // namespace
}  // namespace lumen::serve
