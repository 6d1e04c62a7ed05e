// GcsSubscriber: the client half of long-poll pub/sub (see gcs/pubsub.h).
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "proto/gcs.pb.h"
#include "rpc/gcs_client.h"

namespace lumen::gcs {

using rpc::GcsClient;

// Keeps one long poll open and hands each message to `on_message` on the
// loop. After the GCS forgot this subscriber (NOT_FOUND) it subscribes again
// and calls `on_resync`, so the owner can re-read the state it mirrors.
// Start/Stop and the callbacks run on the loop's thread.
class GcsSubscriber {
 public:
  // `keyed` channels deliver only the keys passed to Watch().
  GcsSubscriber(GcsClient* gcs, EventLoop* loop, std::vector<proto::Channel> channels,
                std::function<void(const proto::PubMessage&)> on_message,
                std::function<void()> on_resync, std::vector<proto::Channel> keyed = {});
  void Start();
  void Stop();
  // Starts / stops delivering `key` of a keyed channel (kept across
  // re-subscriptions).
  void Watch(proto::Channel channel, const std::string& key);
  void Unwatch(proto::Channel channel, const std::string& key);
  // Called on the loop each time the GCS confirms a watched key: from then
  // on every change of it is delivered, so the owner reads the key's state
  // now and misses nothing published before (subscribe, then read).
  void OnKeyWatched(std::function<void(proto::Channel, const std::string&)> f) {
    on_key_watched_ = std::move(f);
  }
  // Called once (on the loop) when the cluster is gone: the GCS came back
  // as another cluster (its storage was in memory), or stayed unreachable
  // past the time it announced.
  void OnClusterLost(std::function<void(const std::string&)> f) { on_lost_ = std::move(f); }

 private:
  void DoSubscribe();
  void SendKey(proto::Channel channel, const std::string& key, bool remove);
  void DoPoll();
  void RetryLater(void (GcsSubscriber::*step)());
  // Checks a failed call against the cluster's announced patience.
  void Unreachable(const absl::Status& why);
  void Lost(const std::string& why);

  GcsClient* gcs_;
  EventLoop* loop_;
  std::vector<proto::Channel> channels_;
  std::vector<proto::Channel> keyed_;
  std::set<std::pair<int, std::string>> keys_;
  std::function<void(const proto::PubMessage&)> on_message_;
  std::function<void()> on_resync_;
  std::function<void(proto::Channel, const std::string&)> on_key_watched_;
  std::function<void(const std::string&)> on_lost_;
  proto::ClusterIdentity cluster_;    // as first announced
  int64_t unreachable_since_ms_ = 0;  // 0: the last call got through
  bool lost_ = false;
  std::string subscriber_id_;
  int64_t ack_seq_ = 0;
  int64_t backoff_ms_ = 50;
  std::shared_ptr<bool> alive_;
};

}  // namespace lumen::gcs
