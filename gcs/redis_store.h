// RedisStoreClient: the GCS's tables in a Redis server, so a GCS that is
// killed and started again finds the cluster where it left it. Each table
// is one Redis hash, "NAMESPACE:TABLE", holding serialized records by key.
// Synchronous (hiredis) on the GCS loop; a dropped connection is opened
// again once per call before the call fails.
#pragma once

#include <memory>
#include <string>

#include "gcs/store.h"

struct redisContext;
struct redisReply;

namespace lumen::gcs {

struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string ns = "lumen";  // prefix of every key: clusters sharing a server differ
};

// Parses "redis://HOST:PORT[/NAMESPACE]"; the error says what is wrong.
absl::StatusOr<RedisAddress> ParseRedisUrl(const std::string& url);

class RedisStoreClient : public StoreClient {
 public:
  // Connects (and checks the server answers) or says why it cannot.
  static absl::StatusOr<std::unique_ptr<RedisStoreClient>> Connect(const RedisAddress& address);
  ~RedisStoreClient() override;

  absl::Status Put(const std::string& table, const std::string& key,
                   const std::string& value) override;
  absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                 const std::string& key) override;
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override;
  absl::StatusOr<std::map<std::string, std::string>> GetAll(const std::string& table) override;
  bool persistent() const override { return true; }

 private:
  explicit RedisStoreClient(RedisAddress address) : address_(std::move(address)) {}
  absl::Status Open();
  // Runs a command of binary-safe arguments; reconnects once if the
  // connection broke.
  absl::StatusOr<std::shared_ptr<redisReply>> Command(const std::vector<std::string>& args);
  std::string HashOf(const std::string& table) const { return address_.ns + ":" + table; }

  RedisAddress address_;
  redisContext* context_ = nullptr;
};

}  // namespace lumen::gcs
