// Long-poll publisher; see pubsub.h.
#include "gcs/pubsub.h"

#include "common/logging.h"

namespace lumen::gcs {

void Publisher::HandleSubscribe(const proto::SubscribeRequest& request,
                                proto::SubscribeReply* reply, rpc::SendReply send) {
  if (request.subscriber_id().empty()) {
    send(absl::InvalidArgumentError("subscriber_id is empty"));
    return;
  }
  Subscriber& sub = subscribers_[request.subscriber_id()];
  if (sub.held) {  // a re-subscribe replaces the old session
    sub.held->send(absl::OkStatus());
    sub.held.reset();
  }
  sub = Subscriber();
  for (int c : request.channels()) sub.channels.insert(c);
  for (int c : request.keyed()) sub.keyed.insert(c);
  sub.last_seen_ms = clock_->NowMs();
  *reply->mutable_cluster() = identity_;
  send(absl::OkStatus());
}

void Publisher::HandleUnsubscribe(const proto::UnsubscribeRequest& request,
                                  proto::UnsubscribeReply* reply, rpc::SendReply send) {
  auto it = subscribers_.find(request.subscriber_id());
  if (it != subscribers_.end()) {
    if (it->second.held) it->second.held->send(absl::OkStatus());
    subscribers_.erase(it);
  }
  send(absl::OkStatus());
}

void Publisher::HandleSubscribeKey(const proto::SubscribeKeyRequest& request,
                                   proto::SubscribeKeyReply* reply, rpc::SendReply send) {
  auto it = subscribers_.find(request.subscriber_id());
  if (it == subscribers_.end()) {
    send(absl::NotFoundError("unknown subscriber: subscribe again"));
    return;
  }
  std::pair<int, std::string> key{request.channel(), request.key()};
  if (request.remove()) {
    it->second.keys.erase(key);
  } else {
    it->second.keys.insert(key);
  }
  send(absl::OkStatus());
}

void Publisher::HandlePoll(const proto::PollRequest& request, proto::PollReply* reply,
                           rpc::SendReply send) {
  auto it = subscribers_.find(request.subscriber_id());
  if (it == subscribers_.end()) {
    send(absl::NotFoundError("unknown subscriber: subscribe again"));
    return;
  }
  Subscriber& sub = it->second;
  sub.last_seen_ms = clock_->NowMs();
  while (!sub.pending.empty() && sub.pending.front().seq() <= request.ack_seq()) {
    sub.pending.pop_front();
  }
  // What was sent but not acknowledged goes out again.
  sub.sent_upto = std::min(sub.sent_upto, request.ack_seq());
  if (sub.held) {  // only one poll at a time: answer the older one empty
    sub.held->send(absl::OkStatus());
    sub.held.reset();
  }
  sub.held = HeldPoll{reply, std::move(send), clock_->NowMs()};
  if (!sub.pending.empty()) Flush(&sub);
}

void Publisher::Flush(Subscriber* sub) {
  if (!sub->held) return;
  for (const auto& m : sub->pending) *sub->held->reply->add_messages() = m;
  if (!sub->pending.empty()) sub->sent_upto = sub->pending.back().seq();
  sub->held->send(absl::OkStatus());
  sub->held.reset();
}

void Publisher::Publish(const proto::PubMessage& message) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    Subscriber& sub = it->second;
    if (!sub.Wants(message)) {
      ++it;
      continue;
    }
    bool coalesced = false;
    if (message.channel() == proto::RESOURCE_VIEW) {
      for (auto m = sub.pending.rbegin(); m != sub.pending.rend() && m->seq() > sub.sent_upto;
           ++m) {
        if (m->channel() == message.channel() && m->key() == message.key()) {
          int64_t seq = m->seq();
          *m = message;
          m->set_seq(seq);
          coalesced = true;
          break;
        }
      }
    }
    if (!coalesced) {
      sub.pending.push_back(message);
      sub.pending.back().set_seq(sub.next_seq++);
    }
    if (sub.pending.size() > options_.max_pending) {
      LUMEN_LOG_WARN("dropping subscriber that fell {} messages behind", sub.pending.size());
      if (sub.held) sub.held->send(absl::OkStatus());
      it = subscribers_.erase(it);
      continue;
    }
    if (!options_.defer) Flush(&sub);
    ++it;
  }
  if (options_.defer && !flush_deferred_) {
    flush_deferred_ = true;
    options_.defer([this] { FlushDeferred(); });
  }
}

void Publisher::FlushDeferred() {
  flush_deferred_ = false;
  for (auto& [id, sub] : subscribers_) {
    if (sub.held && sub.pending.size() > 0 && sub.pending.back().seq() > sub.sent_upto) {
      Flush(&sub);
    }
  }
}

void Publisher::Tick() {
  int64_t now = clock_->NowMs();
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    Subscriber& sub = it->second;
    if (sub.held && now - sub.held->since_ms >= options_.max_poll_hold_ms) {
      sub.held->send(absl::OkStatus());
      sub.held.reset();
      sub.last_seen_ms = now;
    }
    if (!sub.held && now - sub.last_seen_ms > options_.subscriber_timeout_ms) {
      it = subscribers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Publisher::Close() {
  for (auto& [id, sub] : subscribers_) {
    if (sub.held) sub.held->send(absl::UnavailableError("GCS is stopping"));
    sub.held.reset();
  }
}

}  // namespace lumen::gcs
