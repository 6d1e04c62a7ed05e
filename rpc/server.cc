// GrpcServer and the dispatch glue; see server.h and dispatch.h.
#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include "common/logging.h"

#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "rpc/dispatch.h"
#include "rpc/metrics.h"
#include "rpc/tls.h"

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

bool CallTracker::Call::Finish(const absl::Status& status,
                               const std::function<bool(grpc::ByteBuffer*)>& serialize) {
  if (done_.exchange(true)) return false;
  grpc::ByteBuffer reply;
  if (status.ok() && (!serialize || !serialize(&reply))) {
    reactor_->Answer(grpc::Status(grpc::StatusCode::INTERNAL, "the reply could not be serialized"),
                     nullptr);
    return true;
  }
  reactor_->Answer(ToGrpc(status), status.ok() ? &reply : nullptr);
  return true;
}

std::shared_ptr<CallTracker::Call> CallTracker::Begin(Answerable* reactor) {
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
  for (auto& c : calls) c->Finish(status, nullptr);
}

grpc::Status CheckToken(const std::string& token,
                        const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
  if (token.empty()) return grpc::Status::OK;
  auto it = md.find(kTokenMetadataKey);
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this lumen cluster requires its token on every call and none was "
                        "given: pass --token, set LUMEN_TOKEN, or run as the user who started "
                        "the cluster (token file in LUMEN_HOME)");
  }
  const grpc::string_ref& got = it->second;
  if (got.size() != token.size() || CRYPTO_memcmp(got.data(), token.data(), got.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "wrong cluster token: use the token printed by `lumen start --head` "
                        "(also in LUMEN_HOME/token on the head machine)");
  }
  return grpc::Status::OK;
}

namespace {

// A server's figures per method: latency of answered calls (their count
// too) and errors by code, in the process registry.
class ServerStats {
 public:
  explicit ServerStats(std::string server)
      : server_(std::move(server)),
        latency_(prometheus::BuildHistogram()
                     .Name("lumen_rpc_server_latency_seconds")
                     .Help("Time from a call's arrival to its answer, by server and method")
                     .Register(ProcessRegistry())),
        errors_(prometheus::BuildCounter()
                    .Name("lumen_rpc_server_errors_total")
                    .Help("Calls answered with an error, by server, method and gRPC code")
                    .Register(ProcessRegistry())) {}

  struct Method {
    std::string label;  // "Service.Method"
    prometheus::Histogram* latency = nullptr;
  };
  Method ForMethod(const std::string& full_name) {
    // "/lumen.proto.GcsKvService/KvPut" -> "GcsKvService.KvPut"
    std::string label = full_name;
    if (size_t dot = label.rfind('.', label.rfind('/')); dot != std::string::npos) {
      label = label.substr(dot + 1);
    }
    std::replace(label.begin(), label.end(), '/', '.');
    static const prometheus::Histogram::BucketBoundaries kBounds = {
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
    return {label, &latency_.Add({{"server", server_}, {"method", label}}, kBounds)};
  }
  void Error(const std::string& method, grpc::StatusCode code) {
    static const char* kNames[] = {"OK",
                                   "CANCELLED",
                                   "UNKNOWN",
                                   "INVALID_ARGUMENT",
                                   "DEADLINE_EXCEEDED",
                                   "NOT_FOUND",
                                   "ALREADY_EXISTS",
                                   "PERMISSION_DENIED",
                                   "RESOURCE_EXHAUSTED",
                                   "FAILED_PRECONDITION",
                                   "ABORTED",
                                   "OUT_OF_RANGE",
                                   "UNIMPLEMENTED",
                                   "INTERNAL",
                                   "UNAVAILABLE",
                                   "DATA_LOSS",
                                   "UNAUTHENTICATED"};
    int c = static_cast<int>(code);
    const char* name = c >= 0 && c <= 16 ? kNames[c] : "UNKNOWN";
    errors_.Add({{"server", server_}, {"method", method}, {"code", name}}).Increment();
  }

 private:
  std::string server_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& errors_;
};

struct HostedMethod {
  const Method* method;
  ServerStats::Method stats;
};

// One call, as the generic service sees it: checked when its headers
// arrive, then its one request read, then answered once.
class UnaryReactor final : public grpc::ServerGenericBidiReactor, public Answerable {
 public:
  UnaryReactor(const std::map<std::string, HostedMethod>& methods, const std::string& token,
               CallTracker* tracker, ServerStats* stats, grpc::GenericCallbackServerContext* ctx)
      : tracker_(tracker), stats_(stats), start_(std::chrono::steady_clock::now()) {
    auto it = methods.find(ctx->method());
    if (it == methods.end()) {
      // Not a series per name a stranger makes up.
      End(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                       "this lumen server has no method '" + ctx->method() + "'"));
      return;
    }
    hosted_ = &it->second;
    method_ = it->second.method;
    // The token before any byte of the body: a caller without it is
    // answered here and its message is never read.
    if (grpc::Status auth = CheckToken(token, ctx->client_metadata()); !auth.ok()) {
      End(auth);
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request"));
      return;
    }
    if (request_.Length() > method_->max_request_bytes) {
      End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "the request is " + std::to_string(request_.Length()) +
                           " bytes; this method takes at most " +
                           std::to_string(method_->max_request_bytes)));
      return;
    }
    std::shared_ptr<CallTracker::Call> call = tracker_->Begin(this);
    if (!call) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
      return;
    }
    method_->run(&request_, std::move(call));
  }

  void Answer(const grpc::Status& status, grpc::ByteBuffer* reply) override {
    if (status.ok() && reply != nullptr) {
      Record(status);
      reply_ = std::move(*reply);
      StartWriteAndFinish(&reply_, grpc::WriteOptions(), status);
    } else {
      End(status);
    }
  }

  void OnDone() override { delete this; }

 private:
  void Record(const grpc::Status& status) {
    if (hosted_ != nullptr) {
      std::chrono::duration<double> took = std::chrono::steady_clock::now() - start_;
      hosted_->stats.latency->Observe(took.count());
    }
    if (!status.ok()) {
      stats_->Error(hosted_ != nullptr ? hosted_->stats.label : "unknown", status.error_code());
    }
  }
  void End(const grpc::Status& status) {
    Record(status);
    Finish(status);
  }

  CallTracker* tracker_;
  ServerStats* stats_;
  std::chrono::steady_clock::time_point start_;
  const HostedMethod* hosted_ = nullptr;
  const Method* method_ = nullptr;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class GenericHost final : public grpc::CallbackGenericService {
 public:
  GenericHost(std::string name, std::string token, CallTracker* tracker)
      : token_(std::move(token)), tracker_(tracker), stats_(std::move(name)) {}
  void Add(const Service& service) {
    for (const auto& [name, method] : service.methods()) {
      methods_[name] = HostedMethod{&method, stats_.ForMethod(name)};
    }
  }
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new UnaryReactor(methods_, token_, tracker_, &stats_, ctx);
  }

 private:
  std::string token_;
  CallTracker* tracker_;
  ServerStats stats_;
  std::map<std::string, HostedMethod> methods_;
};

}  // namespace

void ApplyServerBounds(grpc::ServerBuilder* builder, const std::string& name,
                       size_t max_request_bytes) {
  // Bounds on what callers, authenticated or not, can make it hold: the
  // memory for messages in flight, the threads, the streams per connection.
  grpc::ResourceQuota quota(name);
  quota.Resize(kMaxServerMemoryBytes);
  quota.SetMaxThreads(kMaxServerThreads);
  builder->SetResourceQuota(quota);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection);
  builder->SetMaxReceiveMessageSize(static_cast<int>(max_request_bytes));
}

struct GrpcServer::Impl {
  std::string name;
  ServerOptions options;
  std::vector<std::unique_ptr<Service>> services;
  CallTracker tracker;
  std::unique_ptr<GenericHost> host;
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
  const absl::StatusOr<TlsConfig>& tls = TlsFromEnv();
  if (!tls.ok()) return tls.status();
  grpc::ServerBuilder builder;
  ApplyServerBounds(&builder, impl_->name, kMaxLargeRequestBytes);
  const std::string address = JoinHostPort(impl_->options.host, impl_->options.port);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls->enabled()) {
    // Mutual TLS: every caller shows a certificate from the cluster's CA.
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = tls->ca_pem;
    ssl.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  if (!tls->enabled() && !loopback) {
    LUMEN_LOG_WARN(
        "{} listens on {} in plaintext: anyone on that network can read the "
        "traffic; on a network you do not trust set LUMEN_TLS_CERT, LUMEN_TLS_KEY "
        "and LUMEN_TLS_CA (docs/security.md)",
        impl_->name, address);
  }
  builder.AddListeningPort(address, credentials, &impl_->port);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Two servers must never share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, kMaxFrameBytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  impl_->host = std::make_unique<GenericHost>(impl_->name, impl_->options.token, &impl_->tracker);
  for (auto& s : impl_->services) impl_->host->Add(*s);
  builder.RegisterCallbackGenericService(impl_->host.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return absl::UnavailableError(impl_->name + " cannot listen on " + address +
                                  " (is the port in use, or the host not an address of this "
                                  "machine?)");
  }
  LUMEN_LOG_INFO("{} listening on {}{}", impl_->name,
                 JoinHostPort(impl_->options.host, impl_->port), tls->enabled() ? " (TLS)" : "");
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
