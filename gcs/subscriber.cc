// GcsSubscriber; see subscriber.h.
#include "gcs/subscriber.h"

#include "common/clock.h"
#include "common/logging.h"
#include "lumen/id.h"

namespace lumen::gcs {

GcsSubscriber::GcsSubscriber(GcsClient* gcs, EventLoop* loop, std::vector<proto::Channel> channels,
                             std::function<void(const proto::PubMessage&)> on_message,
                             std::function<void()> on_resync, std::vector<proto::Channel> keyed)
    : gcs_(gcs),
      loop_(loop),
      channels_(std::move(channels)),
      keyed_(std::move(keyed)),
      on_message_(std::move(on_message)),
      on_resync_(std::move(on_resync)),
      subscriber_id_(WorkerId::FromRandom().Binary()) {}

void GcsSubscriber::Start() {
  alive_ = std::make_shared<bool>(true);
  DoSubscribe();
}

void GcsSubscriber::Stop() {
  if (alive_) *alive_ = false;
  proto::UnsubscribeRequest req;
  req.set_subscriber_id(subscriber_id_);
  gcs_->Unsubscribe(req, [](absl::Status, proto::UnsubscribeReply) {}, {.timeout_ms = 1000});
}

void GcsSubscriber::RetryLater(void (GcsSubscriber::*step)()) {
  std::weak_ptr<bool> alive = alive_;
  loop_->PostAfter("gcs_subscriber.retry", std::chrono::milliseconds(backoff_ms_),
                   [this, alive, step] {
                     if (auto a = alive.lock(); a && *a) (this->*step)();
                   });
  backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 2000);
}

void GcsSubscriber::DoSubscribe() {
  proto::SubscribeRequest req;
  req.set_subscriber_id(subscriber_id_);
  for (auto c : channels_) req.add_channels(c);
  for (auto c : keyed_) req.add_keyed(c);
  std::weak_ptr<bool> alive = alive_;
  gcs_->Subscribe(req, [this, alive](absl::Status s, proto::SubscribeReply reply) {
    if (auto a = alive.lock(); !a || !*a) return;
    if (!s.ok()) {
      LUMEN_LOG_DEBUG("subscribe to GCS failed: {}", s.ToString());
      Unreachable(s);
      if (lost_) return;
      RetryLater(&GcsSubscriber::DoSubscribe);
      return;
    }
    unreachable_since_ms_ = 0;
    if (cluster_.cluster_id().empty()) {
      cluster_ = reply.cluster();
    } else if (reply.cluster().cluster_id() != cluster_.cluster_id()) {
      Lost("the GCS at " + gcs_->address() +
           " restarted without this cluster's state (its storage was in memory) and now serves "
           "another cluster");
      return;
    }
    backoff_ms_ = 50;
    ack_seq_ = 0;
    for (const auto& [channel, key] : keys_) {
      SendKey(static_cast<proto::Channel>(channel), key, false);
    }
    if (on_resync_) on_resync_();
    DoPoll();
  });
}

void GcsSubscriber::Unreachable(const absl::Status& why) {
  int64_t now = RealClock::Get()->NowMs();
  if (unreachable_since_ms_ == 0) unreachable_since_ms_ = now;
  int64_t patience = cluster_.lost_after_ms();
  if (patience <= 0 || now - unreachable_since_ms_ < patience) return;
  std::string silent = "the GCS at " + gcs_->address() + " has not answered for " +
                       std::to_string(now - unreachable_since_ms_) + " ms (" +
                       std::string(why.message()) + ")";
  Lost(cluster_.persistent()
           ? silent + "; it did not come back, so the cluster is taken for gone"
           : silent +
                 " and kept the cluster's state in memory, so the cluster is gone; start a "
                 "new one (or run the head with --storage redis://HOST:PORT to survive a "
                 "GCS restart)");
}

void GcsSubscriber::Lost(const std::string& why) {
  if (lost_) return;
  lost_ = true;
  LUMEN_LOG_ERROR("cluster lost: {}", why);
  if (on_lost_) on_lost_(why);
}

void GcsSubscriber::Watch(proto::Channel channel, const std::string& key) {
  if (keys_.insert({channel, key}).second) SendKey(channel, key, false);
}

void GcsSubscriber::Unwatch(proto::Channel channel, const std::string& key) {
  if (keys_.erase({channel, key})) SendKey(channel, key, true);
}

void GcsSubscriber::SendKey(proto::Channel channel, const std::string& key, bool remove) {
  proto::SubscribeKeyRequest req;
  req.set_subscriber_id(subscriber_id_);
  req.set_channel(channel);
  req.set_key(key);
  req.set_remove(remove);
  // A NOT_FOUND means a re-subscription is under way, which sends keys again.
  std::weak_ptr<bool> alive = alive_;
  gcs_->SubscribeKey(req,
                     [this, alive, channel, key, remove](absl::Status s, proto::SubscribeKeyReply) {
                       if (auto a = alive.lock(); !a || !*a) return;
                       if (s.ok() && !remove && on_key_watched_ && keys_.count({channel, key})) {
                         on_key_watched_(channel, key);
                       }
                     },
                     {.timeout_ms = 10'000, .retry_for_ms = 10'000});
}

void GcsSubscriber::DoPoll() {
  proto::PollRequest req;
  req.set_subscriber_id(subscriber_id_);
  req.set_ack_seq(ack_seq_);
  std::weak_ptr<bool> alive = alive_;
  gcs_->Poll(req,
             [this, alive](absl::Status s, proto::PollReply reply) {
               if (auto a = alive.lock(); !a || !*a) return;
               if (absl::IsNotFound(s)) {
                 DoSubscribe();
                 return;
               }
               if (!s.ok()) {
                 Unreachable(s);
                 if (lost_) return;
                 RetryLater(&GcsSubscriber::DoPoll);
                 return;
               }
               unreachable_since_ms_ = 0;
               backoff_ms_ = 50;
               for (const auto& m : reply.messages()) {
                 if (m.seq() <= ack_seq_) continue;  // sent again after a lost reply
                 ack_seq_ = m.seq();
                 on_message_(m);
               }
               DoPoll();
             },
             {.timeout_ms = 30'000});
}

}  // namespace lumen::gcs
