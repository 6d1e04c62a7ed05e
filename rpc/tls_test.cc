// Mutual TLS between lumen processes, with certificates made here by the
// openssl command: a call with the cluster's CA-signed certificate goes
// through; a plaintext caller and a TLS caller without a client
// certificate do not. Its own program: the TLS settings are read from the
// environment once per process.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "rpc/gcs_client.h"
#include "rpc/gcs_service.h"
#include "rpc/rpc.h"
#include "rpc/server.h"
#include "rpc/test_certs.h"
#include "rpc/tls.h"

namespace lumen::rpc {
namespace {

class EchoKv : public GcsKvHandler {
 public:
  LUMEN_HANDLER_IMPL(KvGet) {
    reply->set_found(true);
    reply->set_value("tls:" + request.key());
    send(absl::OkStatus());
  }
  LUMEN_HANDLER_IMPL(KvExists) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvPut) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvDel) { send(absl::OkStatus()); }
  LUMEN_HANDLER_IMPL(KvKeys) { send(absl::OkStatus()); }
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = "/tmp/lumen_tls_test_" + RandomHex(8);
    ASSERT_TRUE(MakeDirs(dir_).ok());
    // A CA, and one certificate it signs for the cluster's name "lumen".
    std::string failed = MakeTestCertificates(dir_, /*set_env=*/true);
    ASSERT_TRUE(failed.empty()) << failed;
    ASSERT_TRUE(TlsFromEnv().ok()) << TlsFromEnv().status();
    ASSERT_TRUE(TlsFromEnv()->enabled());
  }
  static void TearDownTestSuite() { RemoveAll(dir_); }

  void SetUp() override {
    loop_.Start();
    server_ = std::make_unique<GrpcServer>("tls", ServerOptions{"127.0.0.1", 0, "secret"});
    server_->AddService(MakeGcsKvService(server_->MakeContext(&loop_), &kv_));
    ASSERT_TRUE(server_->Start().ok());
  }
  std::string Address() const { return JoinHostPort("127.0.0.1", server_->port()); }

  // A raw KvGet over `credentials`; its status.
  grpc::Status RawCall(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("lumen");
    auto channel = grpc::CreateCustomChannel(Address(), credentials, args);
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata(kTokenMetadataKey, "secret");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Slice empty(std::string{});
    grpc::ByteBuffer request(&empty, 1), reply;  // an empty message, not no message
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/lumen.proto.GcsKvService/KvGet", grpc::StubOptions(), &request, &reply,
                   [&](grpc::Status s) { done.set_value(s); });
    return done.get_future().get();
  }

  static inline std::string dir_;
  EventLoop loop_{"tls-server"};
  EchoKv kv_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(TlsTest, ClusterPeersTalkOverMutualTls) {
  GcsClient client(Address(), "secret", nullptr);
  proto::KvGetRequest req;
  req.set_key("k");
  auto r = CallSync<proto::KvGetReply>([&](auto cb) { client.KvGet(req, cb); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value(), "tls:k");
}

TEST_F(TlsTest, PlaintextAndCertificatelessCallersAreRefused) {
  EXPECT_EQ(RawCall(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::SslCredentialsOptions no_client_cert;
  no_client_cert.pem_root_certs = TlsFromEnv()->ca_pem;  // trusts the server, shows nothing
  EXPECT_EQ(RawCall(grpc::SslCredentials(no_client_cert)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::SslCredentialsOptions full;
  full.pem_root_certs = TlsFromEnv()->ca_pem;
  full.pem_private_key = TlsFromEnv()->key_pem;
  full.pem_cert_chain = TlsFromEnv()->cert_pem;
  EXPECT_TRUE(RawCall(grpc::SslCredentials(full)).ok());
}

}  // namespace
}  // namespace lumen::rpc
