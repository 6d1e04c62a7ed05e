// Where the GCS keeps its tables. The default lives in memory and dies with
// the GCS; the Redis one (redis_store.h) lets a restarted GCS find the
// cluster again. Called only from the GCS loop.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/status.h"

namespace lumen::gcs {

class StoreClient {
 public:
  virtual ~StoreClient() = default;
  virtual absl::Status Put(const std::string& table, const std::string& key,
                           const std::string& value) = 0;
  virtual absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                         const std::string& key) = 0;
  // OK whether or not the key existed; returns whether it did.
  virtual absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) = 0;
  virtual absl::StatusOr<std::map<std::string, std::string>> GetAll(const std::string& table) = 0;
  // Whether the tables outlive the GCS process (a restarted GCS finds them).
  virtual bool persistent() const { return false; }
};

class InMemoryStoreClient : public StoreClient {
 public:
  absl::Status Put(const std::string& table, const std::string& key,
                   const std::string& value) override {
    tables_[table][key] = value;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                 const std::string& key) override {
    auto t = tables_.find(table);
    if (t == tables_.end()) return std::optional<std::string>();
    auto it = t->second.find(key);
    if (it == t->second.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override {
    auto t = tables_.find(table);
    return t != tables_.end() && t->second.erase(key) > 0;
  }
  absl::StatusOr<std::map<std::string, std::string>> GetAll(const std::string& table) override {
    auto t = tables_.find(table);
    if (t == tables_.end()) return std::map<std::string, std::string>();
    return t->second;
  }

 private:
  std::map<std::string, std::map<std::string, std::string>> tables_;
};

}  // namespace lumen::gcs
