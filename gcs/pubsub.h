// Publisher: the GCS side of pub/sub by long polling. Each subscriber has a
// mailbox; Poll(ack_seq) drops what was acknowledged and returns the rest, or
// holds the call until something is published or the hold period ends.
// Delivery is at least once and in order per subscriber. Resource-view
// updates for the same node that have not been sent yet are coalesced.
// A subscriber that stops polling is dropped; its next Poll gets NOT_FOUND
// and it subscribes again and re-reads state. A channel can be subscribed
// whole, or per key (an actor's changes go only to those watching it).
// Runs on the GCS loop.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "common/clock.h"
#include "proto/gcs.pb.h"
#include "rpc/gcs_service.h"

namespace lumen::gcs {

class Publisher : public rpc::GcsPubSubHandler {
 public:
  struct Options {
    int64_t max_poll_hold_ms = 10'000;
    int64_t subscriber_timeout_ms = 60'000;
    size_t max_pending = 100'000;  // a mailbox this full is dropped
    // When set, polls are answered by one task given to `defer` after the
    // publishes queued with it, so a burst goes out as one reply per
    // subscriber; when empty, each publish answers at once.
    std::function<void(std::function<void()>)> defer;
  };

  Publisher(Clock* clock, Options options) : clock_(clock), options_(options) {}
  // Told to every subscriber (so it notices a GCS that lost the cluster).
  void SetIdentity(proto::ClusterIdentity identity) { identity_ = std::move(identity); }

  LUMEN_HANDLER_IMPL(Subscribe);
  LUMEN_HANDLER_IMPL(Poll);
  LUMEN_HANDLER_IMPL(Unsubscribe);
  LUMEN_HANDLER_IMPL(SubscribeKey);

  // `message` has channel, key and payload; seq is set per subscriber.
  void Publish(const proto::PubMessage& message);
  // Answers polls held past the hold period; drops silent subscribers.
  void Tick();
  // Answers every held poll (the GCS is stopping).
  void Close();

  size_t NumSubscribers() const { return subscribers_.size(); }

 private:
  struct HeldPoll {
    proto::PollReply* reply;
    rpc::SendReply send;
    int64_t since_ms;
  };
  struct Subscriber {
    std::set<int> channels;  // every key
    std::set<int> keyed;     // only the keys in `keys`
    std::set<std::pair<int, std::string>> keys;
    bool Wants(const proto::PubMessage& m) const {
      return channels.count(m.channel()) ||
             (keyed.count(m.channel()) && keys.count({m.channel(), m.key()}));
    }
    std::deque<proto::PubMessage> pending;  // seq ascending
    int64_t next_seq = 1;
    int64_t sent_upto = 0;
    int64_t last_seen_ms = 0;
    std::optional<HeldPoll> held;
  };

  void Flush(Subscriber* sub);
  void FlushDeferred();

  Clock* clock_;
  Options options_;
  proto::ClusterIdentity identity_;
  std::map<std::string, Subscriber> subscribers_;
  bool flush_deferred_ = false;
};

}  // namespace lumen::gcs
