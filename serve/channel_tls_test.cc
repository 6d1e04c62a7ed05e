// The serving data plane over mutual TLS (the cluster's LUMEN_TLS_*
// certificates, made here by openssl): a channel gets its answers; a peer
// that speaks plaintext, even with the right token, gets nothing. Its own
// program: TLS settings are read from the environment once per process.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "rpc/test_certs.h"
#include "serve/channel.h"
#include "serve/frame.h"

namespace lumen::serve {
namespace {

class ChannelTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = "/tmp/lumen_channel_tls_" + RandomHex(8);
    ASSERT_TRUE(MakeDirs(dir_).ok());
    std::string failed = rpc::MakeTestCertificates(dir_, /*set_env=*/true);
    ASSERT_TRUE(failed.empty()) << failed;
  }
  static void TearDownTestSuite() { RemoveAll(dir_); }
  static inline std::string dir_;
};

TEST_F(ChannelTlsTest, CallsGoOverTlsAndPlaintextGetsNothing) {
  auto listener = ReplicaListener::Start("127.0.0.1", "secret", 2,
                                         [](Request r) { return Response::Text("tls:" + r.body); });
  ASSERT_TRUE(listener.ok()) << listener.status();
  ReplicaChannel channel((*listener)->address(), "secret");
  Request r;
  r.body = "hello";
  std::promise<absl::StatusOr<Response>> answer;
  channel.Call(r, [&](absl::StatusOr<Response> a) { answer.set_value(std::move(a)); });
  auto f = answer.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto got = f.get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "tls:hello");

  // Plaintext with the right token and a request: closed, never answered.
  const std::string& address = (*listener)->address();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(std::stoi(address.substr(address.rfind(':') + 1)));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string frames = EncodeFrame(0, "secret") + EncodeFrame(1, "x");
  ASSERT_EQ(::send(fd, frames.data(), frames.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(frames.size()));
  char buf[256];
  ssize_t n;
  std::string back;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) back.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(back.find("secret"), std::string::npos);
  EXPECT_LT(back.size(), kFrameHeaderBytes + 1) << "no frame came back";
  ::close(fd);
}

}  // namespace
}  // namespace lumen::serve
