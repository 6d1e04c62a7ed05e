// RedisStoreClient; see redis_store.h.
#include "gcs/redis_store.h"

#include <hiredis/hiredis.h>

#include <charconv>

#include "common/logging.h"

namespace lumen::gcs {

absl::StatusOr<RedisAddress> ParseRedisUrl(const std::string& url) {
  const std::string scheme = "redis://";
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("storage '" + url + "': " + why +
                                      "; write it as redis://HOST:PORT or "
                                      "redis://HOST:PORT/NAMESPACE");
  };
  if (url.rfind(scheme, 0) != 0) return bad("only redis:// storage is supported");
  std::string rest = url.substr(scheme.size());
  RedisAddress out;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    out.ns = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (out.ns.empty()) return bad("the namespace after '/' is empty");
  }
  size_t colon = rest.rfind(':');
  out.host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    std::string port = rest.substr(colon + 1);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
    if (ec != std::errc() || end != port.data() + port.size() || out.port < 1 || out.port > 65535) {
      return bad("'" + port + "' is not a port");
    }
  }
  if (out.host.empty()) return bad("the host is missing");
  return out;
}

absl::StatusOr<std::unique_ptr<RedisStoreClient>> RedisStoreClient::Connect(
    const RedisAddress& address) {
  std::unique_ptr<RedisStoreClient> client(new RedisStoreClient(address));
  LUMEN_RETURN_IF_ERROR(client->Open());
  LUMEN_ASSIGN_OR_RETURN(auto pong, client->Command({"PING"}));
  (void)pong;
  return client;
}

RedisStoreClient::~RedisStoreClient() {
  if (context_ != nullptr) redisFree(context_);
}

absl::Status RedisStoreClient::Open() {
  if (context_ != nullptr) redisFree(context_);
  timeval timeout{2, 0};
  context_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, timeout);
  std::string where = "redis://" + address_.host + ":" + std::to_string(address_.port);
  if (context_ == nullptr) return absl::ResourceExhaustedError("cannot allocate a Redis context");
  if (context_->err != 0) {
    std::string why = context_->errstr;
    redisFree(context_);
    context_ = nullptr;
    return absl::UnavailableError("cannot reach the GCS storage at " + where + ": " + why +
                                  " (is redis-server running there?)");
  }
  timeval op_timeout{5, 0};
  redisSetTimeout(context_, op_timeout);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<redisReply>> RedisStoreClient::Command(
    const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (context_ == nullptr || context_->err != 0) {
      if (absl::Status s = Open(); !s.ok()) {
        if (attempt == 1) return s;
        continue;
      }
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (reply == nullptr) {  // the connection broke: open it again once
      LUMEN_LOG_WARN("GCS storage connection lost: {}", context_->errstr);
      continue;
    }
    std::shared_ptr<redisReply> owned(reply, [](redisReply* r) { freeReplyObject(r); });
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::InternalError("GCS storage refused " + args[0] + ": " +
                                 std::string(reply->str, reply->len));
    }
    return owned;
  }
  return absl::UnavailableError("the GCS storage at redis://" + address_.host + ":" +
                                std::to_string(address_.port) + " does not answer");
}

absl::Status RedisStoreClient::Put(const std::string& table, const std::string& key,
                                   const std::string& value) {
  return Command({"HSET", HashOf(table), key, value}).status();
}

absl::StatusOr<std::optional<std::string>> RedisStoreClient::Get(const std::string& table,
                                                                 const std::string& key) {
  LUMEN_ASSIGN_OR_RETURN(auto reply, Command({"HGET", HashOf(table), key}));
  if (reply->type != REDIS_REPLY_STRING) return std::optional<std::string>();
  return std::optional<std::string>(std::string(reply->str, reply->len));
}

absl::StatusOr<bool> RedisStoreClient::Delete(const std::string& table, const std::string& key) {
  LUMEN_ASSIGN_OR_RETURN(auto reply, Command({"HDEL", HashOf(table), key}));
  return reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
}

absl::StatusOr<std::map<std::string, std::string>> RedisStoreClient::GetAll(
    const std::string& table) {
  LUMEN_ASSIGN_OR_RETURN(auto reply, Command({"HGETALL", HashOf(table)}));
  std::map<std::string, std::string> out;
  if (reply->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i + 1 < reply->elements; i += 2) {
    const redisReply* k = reply->element[i];
    const redisReply* v = reply->element[i + 1];
    out.emplace(std::string(k->str, k->len), std::string(v->str, v->len));
  }
  return out;
}

}  // namespace lumen::gcs
