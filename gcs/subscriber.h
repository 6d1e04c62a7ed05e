// GcsSubscriber: the client half of long-poll pub/sub (see gcs/pubsub.h).
#pragma once

#include <functional>
#include <memory>
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
  GcsSubscriber(GcsClient* gcs, EventLoop* loop, std::vector<proto::Channel> channels,
                std::function<void(const proto::PubMessage&)> on_message,
                std::function<void()> on_resync);
  void Start();
  void Stop();

 private:
  void DoSubscribe();
  void DoPoll();
  void RetryLater(void (GcsSubscriber::*step)());

  GcsClient* gcs_;
  EventLoop* loop_;
  std::vector<proto::Channel> channels_;
  std::function<void(const proto::PubMessage&)> on_message_;
  std::function<void()> on_resync_;
  std::string subscriber_id_;
  int64_t ack_seq_ = 0;
  int64_t backoff_ms_ = 50;
  std::shared_ptr<bool> alive_;
};

}  // namespace lumen::gcs
