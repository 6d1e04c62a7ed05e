// Channels; see client.h.
#include "rpc/client.h"

#include "common/logging.h"
#include "proto/gcs.grpc.pb.h"
#include "rpc/tls.h"

namespace lumen::rpc {

namespace {

// A channel that made one callback call and is never destroyed: it holds a
// reference to gRPC's callback completion queue for the life of the process.
struct CallbackQueuePin {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  std::unique_ptr<proto::GcsKvService::Stub> stub = proto::GcsKvService::NewStub(channel);
  grpc::ClientContext context;
  proto::KvGetRequest request;
  proto::KvGetReply reply;
};

CallbackQueuePin* g_pin = nullptr;  // reachable, so leak checkers accept it

}  // namespace

void KeepGrpcInitialized() {
  static const bool pinned = [] {
    grpc_init();  // never paired with grpc_shutdown()
    g_pin = new CallbackQueuePin();
    g_pin->context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    g_pin->stub->async()->KvGet(&g_pin->context, &g_pin->request, &g_pin->reply,
                                [](grpc::Status) {});
    return true;
  }();
  (void)pinned;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  KeepGrpcInitialized();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // our own retries, per call
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Each peer gets its own connection, even when several share a host.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Object chunks are megabytes: large frames and windows move them in
  // fewer round trips.
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, kMaxFrameBytes);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  const absl::StatusOr<TlsConfig>& tls = TlsFromEnv();
  if (!tls.ok()) {
    // Plaintext would not reach a TLS cluster anyway: say why once, and let
    // the calls fail UNAVAILABLE.
    static const bool said = [&] {
      LUMEN_LOG_ERROR("TLS settings: {}", tls.status().ToString());
      return true;
    }();
    (void)said;
  }
  if (tls.ok() && tls->enabled()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls->ca_pem;
    ssl.pem_private_key = tls->key_pem;
    ssl.pem_cert_chain = tls->cert_pem;
    args.SetSslTargetNameOverride(tls->server_name);
    return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
  }
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::shared_ptr<grpc::Channel> ChannelCache::Get(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& ch = channels_[address];
  if (!ch) ch = MakeChannel(address);
  return ch;
}

void ChannelCache::Forget(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  channels_.erase(address);
}

}  // namespace lumen::rpc
