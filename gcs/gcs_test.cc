// Unit tests of the GCS tables with an in-memory store and a fake clock.
#include <optional>

#include "gcs/job_table.h"
#include "gcs/node_table.h"
#include "gcs/pubsub.h"
#include "gcs/task_events.h"
#include "gtest/gtest.h"
#include "lumen/id.h"

namespace lumen::gcs {
namespace {

// Captures the answer of a handler.
struct Answer {
  std::optional<absl::Status> status;
  rpc::SendReply send() {
    return [this](absl::Status s) { status = s; };
  }
  bool ok() const { return status && status->ok(); }
};

class PubSubTest : public ::testing::Test {
 protected:
  void Subscribe(const std::string& id, std::vector<proto::Channel> channels) {
    proto::SubscribeRequest req;
    req.set_subscriber_id(id);
    for (auto c : channels) req.add_channels(c);
    proto::SubscribeReply reply;
    Answer a;
    publisher_.HandleSubscribe(req, &reply, a.send());
    ASSERT_TRUE(a.ok());
  }
  struct Polled {
    proto::PollReply reply;
    Answer answer;
  };
  std::unique_ptr<Polled> Poll(const std::string& id, int64_t ack) {
    auto p = std::make_unique<Polled>();
    proto::PollRequest req;
    req.set_subscriber_id(id);
    req.set_ack_seq(ack);
    publisher_.HandlePoll(req, &p->reply, p->answer.send());
    return p;
  }
  void Publish(proto::Channel channel, const std::string& key, int64_t marker) {
    proto::PubMessage m;
    m.set_channel(channel);
    m.set_key(key);
    m.mutable_node()->set_start_time_ms(marker);
    publisher_.Publish(m);
  }
  FakeClock clock_;
  Publisher publisher_{&clock_,
                       Publisher::Options{.max_poll_hold_ms = 1000, .subscriber_timeout_ms = 5000}};
};

TEST_F(PubSubTest, PollWaitsForMessagesAndDeliversInOrder) {
  Subscribe("s", {proto::NODE_CHANGES});
  auto first = Poll("s", 0);
  EXPECT_FALSE(first->answer.status) << "an empty mailbox holds the poll";
  Publish(proto::NODE_CHANGES, "n1", 1);
  ASSERT_TRUE(first->answer.ok());
  ASSERT_EQ(first->reply.messages_size(), 1);
  EXPECT_EQ(first->reply.messages(0).seq(), 1);

  Publish(proto::NODE_CHANGES, "n2", 2);
  Publish(proto::JOB_CHANGES, "j", 3);  // not subscribed
  Publish(proto::NODE_CHANGES, "n3", 4);
  auto second = Poll("s", 1);
  ASSERT_TRUE(second->answer.ok());
  ASSERT_EQ(second->reply.messages_size(), 2);
  EXPECT_EQ(second->reply.messages(0).node().start_time_ms(), 2);
  EXPECT_EQ(second->reply.messages(1).node().start_time_ms(), 4);
}

TEST_F(PubSubTest, UnacknowledgedMessagesAreSentAgain) {
  Subscribe("s", {proto::NODE_CHANGES});
  Publish(proto::NODE_CHANGES, "n1", 1);
  for (int i = 0; i < 2; ++i) {  // the first reply was "lost": same ack again
    auto polled = Poll("s", 0);
    ASSERT_TRUE(polled->answer.ok());
    ASSERT_EQ(polled->reply.messages_size(), 1);
    EXPECT_EQ(polled->reply.messages(0).seq(), 1);
  }
}

TEST_F(PubSubTest, ResourceUpdatesNotYetSentAreCoalesced) {
  Subscribe("s", {proto::RESOURCE_VIEW});
  for (int i = 1; i <= 5; ++i) Publish(proto::RESOURCE_VIEW, "n1", i);
  Publish(proto::RESOURCE_VIEW, "n2", 9);
  auto polled = Poll("s", 0);
  ASSERT_EQ(polled->reply.messages_size(), 2);
  EXPECT_EQ(polled->reply.messages(0).key(), "n1");
  EXPECT_EQ(polled->reply.messages(0).node().start_time_ms(), 5);
}

TEST(DeferredPubSubTest, ABurstOfPublishesIsOneReply) {
  FakeClock clock;
  std::vector<std::function<void()>> deferred;
  Publisher publisher(&clock, Publisher::Options{.defer = [&](std::function<void()> task) {
    deferred.push_back(std::move(task));
  }});
  proto::SubscribeRequest sub;
  sub.set_subscriber_id("s");
  sub.add_channels(proto::NODE_CHANGES);
  proto::SubscribeReply sub_reply;
  Answer subscribed;
  publisher.HandleSubscribe(sub, &sub_reply, subscribed.send());
  ASSERT_TRUE(subscribed.ok());
  proto::PollRequest poll;
  poll.set_subscriber_id("s");
  proto::PollReply polled;
  Answer answer;
  publisher.HandlePoll(poll, &polled, answer.send());
  for (int i = 0; i < 3; ++i) {
    proto::PubMessage m;
    m.set_channel(proto::NODE_CHANGES);
    m.set_key("n" + std::to_string(i));
    publisher.Publish(m);
  }
  EXPECT_FALSE(answer.status) << "the poll is answered by the deferred task, not by Publish";
  ASSERT_EQ(deferred.size(), 1u) << "one task for the whole burst";
  deferred[0]();
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(polled.messages_size(), 3);
}

TEST_F(PubSubTest, HeldPollsEndAndSilentSubscribersAreForgotten) {
  Subscribe("s", {proto::NODE_CHANGES});
  auto held = Poll("s", 0);
  clock_.AdvanceMs(1001);
  publisher_.Tick();
  ASSERT_TRUE(held->answer.ok());
  EXPECT_EQ(held->reply.messages_size(), 0);
  clock_.AdvanceMs(6000);
  publisher_.Tick();
  EXPECT_EQ(publisher_.NumSubscribers(), 0u);
  EXPECT_EQ(Poll("s", 0)->answer.status->code(), absl::StatusCode::kNotFound);
}

class NodeTableTest : public ::testing::Test {
 protected:
  NodeId Register() {
    NodeId id = NodeId::FromRandom();
    proto::RegisterNodeRequest req;
    req.mutable_node()->set_node_id(id.Binary());
    (*req.mutable_node()->mutable_resources_total())["CPU"] = 4;
    proto::RegisterNodeReply reply;
    Answer a;
    table_.HandleRegisterNode(req, &reply, a.send());
    EXPECT_TRUE(a.ok());
    EXPECT_EQ(reply.node_timeout_ms(), 4000);
    return id;
  }
  bool Report(const NodeId& id) {
    proto::ReportNodeRequest req;
    req.set_node_id(id.Binary());
    proto::ReportNodeReply reply;
    Answer a;
    table_.HandleReportNode(req, &reply, a.send());
    EXPECT_TRUE(a.ok());
    return reply.node_is_dead();
  }
  FakeClock clock_;
  InMemoryStoreClient store_;
  Publisher publisher_{&clock_, {}};
  GcsNodeTable table_{&store_, &publisher_, &clock_, NodeTableOptions{}};
};

TEST_F(NodeTableTest, SilentNodesAreDeclaredDeadAndToldSo) {
  NodeId a = Register();
  NodeId b = Register();
  EXPECT_EQ(table_.NumAlive(), 2u);
  for (int i = 0; i < 10; ++i) {
    clock_.AdvanceMs(500);
    EXPECT_FALSE(Report(a));
    table_.CheckHealth();
  }
  EXPECT_EQ(table_.NumAlive(), 1u);  // b never reported
  EXPECT_TRUE(Report(b));
  proto::GetAllNodesReply all;
  Answer x;
  table_.HandleGetAllNodes({}, &all, x.send());
  ASSERT_EQ(all.nodes_size(), 2);
  for (const auto& n : all.nodes()) {
    if (NodeId::FromBinary(n.node_id()) == b) {
      EXPECT_EQ(n.state(), proto::NodeInfo::DEAD);
      EXPECT_NE(n.death_reason().find("no heartbeat"), std::string::npos);
    }
  }
}

TEST_F(NodeTableTest, BadAndDuplicateRegistrationsAreRefused) {
  proto::RegisterNodeRequest bad;
  bad.mutable_node()->set_node_id("short");
  proto::RegisterNodeReply reply;
  Answer a;
  table_.HandleRegisterNode(bad, &reply, a.send());
  EXPECT_EQ(a.status->code(), absl::StatusCode::kInvalidArgument);
  NodeId id = Register();
  proto::RegisterNodeRequest again;
  again.mutable_node()->set_node_id(id.Binary());
  Answer b;
  table_.HandleRegisterNode(again, &reply, b.send());
  EXPECT_EQ(b.status->code(), absl::StatusCode::kAlreadyExists);
  proto::ReportNodeRequest unknown;
  unknown.set_node_id(NodeId::FromRandom().Binary());
  proto::ReportNodeReply r;
  Answer c;
  table_.HandleReportNode(unknown, &r, c.send());
  EXPECT_EQ(c.status->code(), absl::StatusCode::kNotFound);
}

TEST(JobTableTest, AnAddSentAgainReturnsTheSameJob) {
  FakeClock clock;
  InMemoryStoreClient store;
  Publisher publisher(&clock, {});
  std::vector<std::string> got;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A new table over the same store: as after a GCS restart.
    GcsJobTable jobs(&store, &publisher, &clock);
    proto::AddJobRequest req;
    req.set_request_id("driver-7-request");
    proto::AddJobReply reply;
    Answer a;
    jobs.HandleAddJob(req, &reply, a.send());
    ASSERT_TRUE(a.ok());
    got.push_back(reply.job_id());
  }
  EXPECT_EQ(got[0], got[1]);
  GcsJobTable jobs(&store, &publisher, &clock);
  proto::AddJobRequest other;
  other.set_request_id("another");
  proto::AddJobReply reply;
  Answer a;
  jobs.HandleAddJob(other, &reply, a.send());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(JobId::FromBinary(reply.job_id()).ToInt(), 2u) << "one job was added, not two";
}

TEST(JobTableTest, JobsGetIncreasingIdsAndFinish) {
  FakeClock clock;
  InMemoryStoreClient store;
  Publisher publisher(&clock, {});
  GcsJobTable jobs(&store, &publisher, &clock);
  std::vector<JobId> ids;
  for (int i = 0; i < 3; ++i) {
    proto::AddJobRequest req;
    req.mutable_job()->set_driver_pid(100 + i);
    proto::AddJobReply reply;
    Answer a;
    jobs.HandleAddJob(req, &reply, a.send());
    ASSERT_TRUE(a.ok());
    ids.push_back(JobId::FromBinary(reply.job_id()));
  }
  EXPECT_EQ(ids[0].ToInt(), 1u);
  EXPECT_EQ(ids[2].ToInt(), 3u);
  proto::MarkJobFinishedRequest fin;
  fin.set_job_id(ids[1].Binary());
  Answer f;
  proto::MarkJobFinishedReply fin_reply;
  jobs.HandleMarkJobFinished(fin, &fin_reply, f.send());
  ASSERT_TRUE(f.ok());
  proto::GetJobRequest get;
  get.set_job_id(ids[1].Binary());
  proto::GetJobReply job;
  Answer g;
  jobs.HandleGetJob(get, &job, g.send());
  EXPECT_TRUE(job.job().finished());
  EXPECT_EQ(job.job().driver_pid(), 101);
  get.set_job_id(JobId::FromInt(99).Binary());
  Answer missing;
  jobs.HandleGetJob(get, &job, missing.send());
  EXPECT_EQ(missing.status->code(), absl::StatusCode::kNotFound);
}

TEST(KvTest, PutGetKeysDelete) {
  InMemoryStoreClient store;
  GcsKv kv(&store);
  auto put = [&](const std::string& key, const std::string& value, bool overwrite) {
    proto::KvPutRequest req;
    req.set_ns("n");
    req.set_key(key);
    req.set_value(value);
    req.set_overwrite(overwrite);
    proto::KvPutReply reply;
    Answer a;
    kv.HandleKvPut(req, &reply, a.send());
    return reply.added();
  };
  EXPECT_TRUE(put("code/a", "1", false));
  EXPECT_FALSE(put("code/a", "2", false));  // kept
  EXPECT_TRUE(put("code/b", "3", false));
  EXPECT_TRUE(put("other", "4", false));
  proto::KvGetRequest get;
  get.set_ns("n");
  get.set_key("code/a");
  proto::KvGetReply got;
  Answer g;
  kv.HandleKvGet(get, &got, g.send());
  EXPECT_EQ(got.value(), "1");
  proto::KvKeysRequest keys;
  keys.set_ns("n");
  keys.set_prefix("code/");
  proto::KvKeysReply listed;
  Answer k;
  kv.HandleKvKeys(keys, &listed, k.send());
  EXPECT_EQ(listed.keys_size(), 2);
  proto::KvDelRequest del;
  del.set_ns("n");
  del.set_key("code/a");
  proto::KvDelReply deleted;
  Answer d;
  kv.HandleKvDel(del, &deleted, d.send());
  EXPECT_TRUE(deleted.deleted());
  proto::KvExistsRequest exists;
  exists.set_ns("n");
  exists.set_key("code/a");
  proto::KvExistsReply there;
  Answer e;
  kv.HandleKvExists(exists, &there, e.send());
  EXPECT_FALSE(there.exists());
}

proto::TaskEvent Event(const TaskId& id, proto::TaskState state, int attempt, int64_t at_ms,
                       const std::string& name = "f") {
  proto::TaskEvent e;
  e.set_task_id(id.Binary());
  e.set_job_id(JobId::FromInt(1).Binary());
  e.set_name(name);
  e.set_state(state);
  e.set_attempt(attempt);
  e.set_at_ms(at_ms);
  return e;
}

// A task's events merge into one record, in whatever order they come; a
// later attempt replaces an earlier one's state; within an attempt a state
// never goes back.
TEST(TaskEventsTest, EventsMergeIntoOneRecordWhateverTheirOrder) {
  GcsTaskEvents events;
  TaskId id = TaskId::FromRandom();
  proto::TaskEvent done = Event(id, proto::FINISHED, 0, 30);
  NodeId node = NodeId::FromRandom();
  done.set_node_id(node.Binary());
  done.set_pid(42);
  events.Add(done);  // the worker's end comes before the owner's submission
  events.Add(Event(id, proto::PENDING, 0, 10));
  events.Add(Event(id, proto::RUNNING, 0, 20));
  proto::ListTasksRequest one;
  one.set_task_id(id.Binary());
  proto::ListTasksReply got = events.List(one);
  ASSERT_EQ(got.tasks_size(), 1);
  const proto::TaskRecord& r = got.tasks(0);
  EXPECT_EQ(r.state(), proto::FINISHED) << "RUNNING, late, does not undo FINISHED";
  EXPECT_EQ(r.submitted_ms(), 10);
  EXPECT_EQ(r.started_ms(), 20);
  EXPECT_EQ(r.ended_ms(), 30);
  EXPECT_EQ(r.node_id(), node.Binary());
  EXPECT_EQ(r.pid(), 42);

  // A failed attempt, then a retry that is running: the record follows the retry.
  TaskId retried = TaskId::FromRandom();
  proto::TaskEvent failed = Event(retried, proto::FAILED, 0, 5);
  failed.set_error("worker died");
  events.Add(Event(retried, proto::PENDING, 0, 1));
  events.Add(failed);
  events.Add(Event(retried, proto::PENDING, 1, 6));
  events.Add(Event(retried, proto::RUNNING, 1, 7));
  events.Add(Event(retried, proto::FAILED, 0, 8));  // attempt 0's, late: ignored
  one.set_task_id(retried.Binary());
  got = events.List(one);
  ASSERT_EQ(got.tasks_size(), 1);
  EXPECT_EQ(got.tasks(0).state(), proto::RUNNING);
  EXPECT_EQ(got.tasks(0).attempt(), 1);
  EXPECT_EQ(got.tasks(0).error(), "worker died") << "the last failure stays readable";
  // Events that are not a task's are ignored.
  events.Add(Event(TaskId(), proto::RUNNING, 0, 1));
  EXPECT_EQ(events.size(), 2u);
}

// At most max_tasks records: the oldest go first and are counted; lists
// come newest first, filtered, limited, with counts by name and state.
TEST(TaskEventsTest, TheWindowIsBoundedAndListsFilterAndSummarize) {
  GcsTaskEvents events(/*max_tasks=*/3);
  std::vector<TaskId> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(TaskId::FromRandom());
    events.Add(Event(ids.back(), i % 2 == 0 ? proto::FAILED : proto::FINISHED, 0, i,
                     i % 2 == 0 ? "bad" : "good"));
  }
  EXPECT_EQ(events.size(), 3u);
  EXPECT_EQ(events.dropped(), 2);
  proto::ListTasksRequest all;
  proto::ListTasksReply got = events.List(all);
  ASSERT_EQ(got.tasks_size(), 3);
  EXPECT_EQ(got.tasks(0).task_id(), ids[4].Binary()) << "newest first";
  EXPECT_EQ(got.dropped(), 2);
  proto::ListTasksRequest failed;
  failed.set_state(proto::FAILED);
  failed.set_limit(1);
  failed.set_summary(true);
  got = events.List(failed);
  EXPECT_EQ(got.matched(), 2);
  ASSERT_EQ(got.tasks_size(), 1);
  EXPECT_EQ(got.tasks(0).name(), "bad");
  ASSERT_EQ(got.summary_size(), 1);
  EXPECT_EQ(got.summary(0).by_state().at("FAILED"), 2);
  proto::ListTasksRequest gone;
  gone.set_task_id(ids[0].Binary());
  EXPECT_EQ(events.List(gone).tasks_size(), 0) << "dropped to stay within the window";
  EXPECT_EQ(ParseTaskState("failed"), proto::FAILED);
  EXPECT_EQ(ParseTaskState("sleeping"), proto::TASK_STATE_UNSPECIFIED);
}

}  // namespace
}  // namespace lumen::gcs
