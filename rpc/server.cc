// GrpcServer and the dispatch glue; see server.h and dispatch.h.
#include <openssl/crypto.h>

#include <vector>

#include "common/logging.h"
#include "rpc/dispatch.h"

namespace lumen::rpc {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string JoinHostPort(const std::string& host, int port) {
  return host + ":" + std::to_string(port);
}

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError("address '" + address + "' is not HOST:PORT");
  }
  const std::string port_text = address.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) {
    return absl::InvalidArgumentError("address '" + address + "' has a bad port '" + port_text +
                                      "' (want 1-65535)");
  }
  *host = address.substr(0, colon);
  *port = static_cast<int>(p);
  return absl::OkStatus();
}

bool CallTracker::Call::Finish(const absl::Status& status, const std::function<void()>& fill) {
  if (done_.exchange(true)) return false;
  if (status.ok()) fill();
  reactor_->Finish(ToGrpc(status));
  return true;
}

std::shared_ptr<CallTracker::Call> CallTracker::Begin(grpc::ServerUnaryReactor* reactor) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return nullptr;
  auto call = std::make_shared<Call>(reactor);
  open_[call.get()] = call;
  return call;
}

void CallTracker::End(Call* call) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(call);
}

void CallTracker::FinishAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Call>> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [raw, call] : open_) calls.push_back(std::move(call));
    open_.clear();
  }
  for (auto& c : calls) c->Finish(status, [] {});
}

grpc::Status CheckToken(const ServiceContext& sc, grpc::CallbackServerContext* ctx) {
  if (sc.token.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find(kTokenMetadataKey);
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this lumen cluster requires its token on every call and none was "
                        "given: pass --token, set LUMEN_TOKEN, or run as the user who started "
                        "the cluster (token file in LUMEN_HOME)");
  }
  const grpc::string_ref& got = it->second;
  if (got.size() != sc.token.size() ||
      CRYPTO_memcmp(got.data(), sc.token.data(), got.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "wrong cluster token: use the token printed by `lumen start --head` "
                        "(also in LUMEN_HOME/token on the head machine)");
  }
  return grpc::Status::OK;
}

struct GrpcServer::Impl {
  std::string name;
  ServerOptions options;
  std::vector<std::unique_ptr<Service>> services;
  CallTracker tracker;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

GrpcServer::GrpcServer(std::string name, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  KeepGrpcInitialized();
  impl_->name = std::move(name);
  impl_->options = std::move(options);
}

GrpcServer::~GrpcServer() { Shutdown(); }

ServiceContext GrpcServer::MakeContext(EventLoop* loop) {
  return ServiceContext{loop, impl_->options.token, &impl_->tracker};
}

void GrpcServer::AddService(std::unique_ptr<Service> service) {
  impl_->services.push_back(std::move(service));
}

int GrpcServer::port() const { return impl_->port; }
const std::string& GrpcServer::host() const { return impl_->options.host; }

absl::Status GrpcServer::Start() {
  const std::string& host = impl_->options.host;
  bool loopback = host == "127.0.0.1" || host == "localhost" || host == "::1" || host.empty();
  if (impl_->options.token.empty() && !loopback) {
    return absl::FailedPreconditionError(
        impl_->name + " will not listen on " + host +
        " without a cluster token: every caller could use it (set one: lumen start makes one)");
  }
  grpc::ServerBuilder builder;
  // Bounds on what callers, authenticated or not, can make it hold: the
  // memory for messages in flight, the threads, the streams per connection.
  grpc::ResourceQuota quota(impl_->name);
  quota.Resize(kMaxServerMemoryBytes);
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection);
  const std::string address = JoinHostPort(impl_->options.host, impl_->options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl_->port);
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Two servers must never share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, kMaxFrameBytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  for (auto& s : impl_->services) builder.RegisterService(s->grpc_service());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return absl::UnavailableError(impl_->name + " cannot listen on " + address +
                                  " (is the port in use, or the host not an address of this "
                                  "machine?)");
  }
  LUMEN_LOG_INFO("{} listening on {}", impl_->name, JoinHostPort(impl_->options.host, impl_->port));
  return absl::OkStatus();
}

void GrpcServer::Shutdown() {
  if (!impl_->server) return;
  impl_->tracker.FinishAll(absl::UnavailableError(impl_->name + " is shutting down"));
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace lumen::rpc
