// ClientPool: one typed client per peer address, made on first use.
// Thread-safe. Clients deliver callbacks on the pool's loop.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/event_loop.h"

namespace lumen::rpc {

template <typename Client>
class ClientPool {
 public:
  ClientPool(std::string token, EventLoop* loop) : token_(std::move(token)), loop_(loop) {}

  Client* Get(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& c = clients_[address];
    if (!c) c = std::make_unique<Client>(address, token_, loop_);
    return c.get();
  }
  // Drops the client of a peer known to be gone (cancels its calls).
  void Remove(const std::string& address) {
    std::unique_ptr<Client> doomed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = clients_.find(address);
      if (it == clients_.end()) return;
      doomed = std::move(it->second);
      clients_.erase(it);
    }
  }
  void Clear() {
    std::map<std::string, std::unique_ptr<Client>> doomed;
    std::lock_guard<std::mutex> lock(mu_);
    doomed.swap(clients_);
  }

 private:
  std::string token_;
  EventLoop* loop_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Client>> clients_;
};

}  // namespace lumen::rpc
