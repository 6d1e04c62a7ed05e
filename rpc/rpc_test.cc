// The RPC plumbing with a real gRPC server on loopback: token checks,
// retries while a peer is not up yet, and held calls answered at shutdown.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/gcs.pb.h"
#include "rpc/gcs_client.h"
#include "rpc/gcs_service.h"
#include "rpc/rpc.h"
#include "rpc/server.h"

namespace lumen::rpc {
namespace {

// Echoes KvGet keys; holds KvExists calls until released.
class TestKv : public GcsKvHandler {
 public:
  LUMEN_HANDLER_IMPL(KvGet) {
    EXPECT_TRUE(loop->IsCurrentThread());
    reply->set_found(true);
    reply->set_value("echo:" + request.key());
    send(absl::OkStatus());
  }
  LUMEN_HANDLER_IMPL(KvExists) { held = std::move(send); }
  LUMEN_HANDLER_IMPL(KvPut) { send(absl::InvalidArgumentError("no puts here")); }
  LUMEN_HANDLER_IMPL(KvDel) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvKeys) { send(absl::OkStatus()); }
  EventLoop* loop = nullptr;
  SendReply held;
};

class RpcTest : public ::testing::Test {
 protected:
  void StartServer(int port = 0) {
    loop_.Start();
    kv_.loop = &loop_;
    server_ = std::make_unique<GrpcServer>("test", ServerOptions{"127.0.0.1", port, "secret"});
    server_->AddService(MakeGcsKvService(server_->MakeContext(&loop_), &kv_));
    ASSERT_TRUE(server_->Start().ok());
  }
  absl::StatusOr<proto::KvGetReply> Get(GcsClient& client, const std::string& key,
                                        CallOptions options = {}) {
    proto::KvGetRequest req;
    req.set_key(key);
    return CallSync<proto::KvGetReply>([&](auto cb) { client.KvGet(req, cb, options); });
  }
  std::string Address() const { return JoinHostPort("127.0.0.1", server_->port()); }

  EventLoop loop_{"server"};
  TestKv kv_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(RpcTest, CallsWithTheTokenReachTheHandlerOnItsLoop) {
  StartServer();
  GcsClient client(Address(), "secret", nullptr);
  auto reply = Get(client, "k");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->value(), "echo:k");
  proto::KvPutRequest put;
  auto refused = CallSync<proto::KvPutReply>([&](auto cb) { client.KvPut(put, cb); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), "no puts here");
}

TEST_F(RpcTest, CallsWithoutTheRightTokenAreRefused) {
  StartServer();
  GcsClient none(Address(), "", nullptr);
  auto r = Get(none, "k");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("none was given"), std::string::npos);
  GcsClient wrong(Address(), "secreT", nullptr);
  r = Get(wrong, "k");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("wrong cluster token"), std::string::npos);
}

TEST_F(RpcTest, RetriesUntilThePeerIsUp) {
  // Find a free port, then start the server on it only after the call began.
  int port;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  EventLoop client_loop("client");
  client_loop.Start();
  GcsClient client(JoinHostPort("127.0.0.1", port), "secret", &client_loop);
  std::promise<absl::Status> done;
  proto::KvGetRequest req;
  req.set_key("late");
  client.KvGet(req, [&](absl::Status s, proto::KvGetReply) { done.set_value(s); },
               {.timeout_ms = 1000, .retry_for_ms = 20'000});
  StartServer(port);
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());
}

TEST_F(RpcTest, NoRetryMeansOneAttemptAndAQuickError) {
  GcsClient client("127.0.0.1:1", "secret", nullptr);
  auto start = std::chrono::steady_clock::now();
  auto r = Get(client, "k", {.timeout_ms = 5000});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(RpcTest, ShutdownAnswersHeldCalls) {
  StartServer();
  GcsClient client(Address(), "secret", nullptr);
  std::promise<absl::Status> done;
  proto::KvExistsRequest req;
  client.KvExists(req, [&](absl::Status s, proto::KvExistsReply) { done.set_value(s); });
  auto held = [&] {
    std::promise<bool> p;
    loop_.Post("check", [&] { p.set_value(static_cast<bool>(kv_.held)); });
    return p.get_future().get();
  };
  for (int i = 0; i < 2000 && !held(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(held());
  loop_.Stop();
  server_->Shutdown();
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), absl::StatusCode::kUnavailable);
  kv_.held(absl::OkStatus());  // a late answer is ignored, not a crash
}

// A caller without the token is answered as soon as its call's headers
// arrive: the server never waits for (or buffers) its message. This call
// sends none at all and still gets its answer.
TEST_F(RpcTest, StrangersAreAnsweredBeforeTheirBodyIsRead) {
  StartServer();
  auto channel = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto call = stub.PrepareCall(&ctx, "/lumen.proto.GcsKvService/KvPut", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(2));
  void* tag = nullptr;
  bool ok = false;
  bool finished = false;
  while (!finished && cq.Next(&tag, &ok)) finished = tag == reinterpret_cast<void*>(2);
  ASSERT_TRUE(finished);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(RpcTest, RequestsAreBoundedPerMethodAfterTheToken) {
  StartServer();
  GcsClient client(Address(), "secret", nullptr);
  // A small method refuses a large request...
  auto big_get = Get(client, std::string(5 << 20, 'k'));
  EXPECT_EQ(big_get.status().code(), absl::StatusCode::kResourceExhausted) << big_get.status();
  EXPECT_NE(big_get.status().message().find("at most"), std::string::npos);
  // ...an upload method takes it (the handler answers)...
  proto::KvPutRequest put;
  put.set_value(std::string(5 << 20, 'v'));
  auto big_put = CallSync<proto::KvPutReply>([&](auto cb) { client.KvPut(put, cb); });
  EXPECT_EQ(big_put.status().message(), "no puts here");
  // ...and a stranger's large upload is refused unread.
  GcsClient stranger(Address(), "", nullptr);
  put.set_value(std::string(32 << 20, 'v'));
  auto refused = CallSync<proto::KvPutReply>([&](auto cb) { stranger.KvPut(put, cb); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  // The server still answers normally afterwards.
  auto fine = Get(client, "k");
  ASSERT_TRUE(fine.ok()) << fine.status();
}

TEST_F(RpcTest, UnknownMethodsAreUnimplemented) {
  StartServer();
  auto channel = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata(kTokenMetadataKey, "secret");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1), reply;  // an empty message, not no message
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/lumen.proto.Nope/Nothing", grpc::StubOptions(), &request, &reply,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(s.error_message().find("/lumen.proto.Nope/Nothing"), std::string::npos);
}

TEST(HostPortTest, SplitAndJoin) {
  std::string host;
  int port = 0;
  EXPECT_TRUE(SplitHostPort("10.0.0.1:6389", &host, &port).ok());
  EXPECT_EQ(host, "10.0.0.1");
  EXPECT_EQ(port, 6389);
  EXPECT_FALSE(SplitHostPort("nocolon", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort(":80", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("h:0", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("h:70000", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("h:8x", &host, &port).ok());
  EXPECT_EQ(JoinHostPort("h", 1), "h:1");
}

}  // namespace
}  // namespace lumen::rpc
