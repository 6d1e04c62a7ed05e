// The serving data plane on real loopback sockets.
#include "serve/channel.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lumen::serve {
namespace {

using Answer = std::promise<absl::StatusOr<Response>>;

absl::StatusOr<Response> CallAndWait(ReplicaChannel& channel, const Request& request) {
  auto answer = std::make_shared<Answer>();
  auto got = answer->get_future();
  channel.Call(request, [answer](absl::StatusOr<Response> r) { answer->set_value(std::move(r)); });
  if (got.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    return absl::DeadlineExceededError("no answer in 20 s");
  }
  return got.get();
}

std::unique_ptr<ReplicaListener> Listen(ReplicaListener::Handler handler, int threads = 4) {
  auto l = ReplicaListener::Start("127.0.0.1", "secret", threads, std::move(handler));
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? std::move(*l) : nullptr;
}

TEST(ChannelTest, RequestsAndAnswersRoundTrip) {
  auto listener = Listen([](Request r) {
    Response out = Response::Text(r.method + " " + r.path + " " + r.Header("x-a") + " " + r.body);
    out.chunks = {"c1", "c2"};
    return out;
  });
  ASSERT_TRUE(listener);
  ReplicaChannel channel(listener->address(), "secret");
  Request r;
  r.method = "POST";
  r.path = "/x";
  r.headers["x-a"] = "b";
  r.body = std::string(3 << 20, 'z');  // several MiB in one frame
  auto got = CallAndWait(channel, r);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "POST /x b " + r.body);
  EXPECT_EQ(got->chunks, (std::vector<std::string>{"c1", "c2"}));
  EXPECT_FALSE(channel.broken());
}

TEST(ChannelTest, ManyCallsAtOnceRunConcurrentlyAndAnswerTheirOwnCaller) {
  std::atomic<int> running{0}, most{0};
  auto listener = Listen(
      [&](Request r) {
        int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // work, not synchronisation
        --running;
        return Response::Text(r.body);
      },
      4);
  ASSERT_TRUE(listener);
  ReplicaChannel channel(listener->address(), "secret");
  constexpr int kCalls = 40;
  std::vector<std::future<absl::StatusOr<Response>>> futures;
  for (int i = 0; i < kCalls; ++i) {
    auto answer = std::make_shared<Answer>();
    futures.push_back(answer->get_future());
    Request r;
    r.body = std::to_string(i);
    channel.Call(r, [answer](absl::StatusOr<Response> a) { answer->set_value(std::move(a)); });
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_EQ(futures[i].wait_for(std::chrono::seconds(20)), std::future_status::ready);
    auto got = futures[i].get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->body, std::to_string(i));
  }
  EXPECT_GT(most.load(), 1) << "calls on one connection should overlap";
  EXPECT_LE(most.load(), 4) << "at most max_threads per connection";
}

TEST(ChannelTest, AWrongTokenGetsNoAnswer) {
  std::atomic<int> calls{0};
  auto listener = Listen([&](Request) {
    ++calls;
    return Response::Text("no");
  });
  ASSERT_TRUE(listener);
  ReplicaChannel channel(listener->address(), "wrong");
  auto got = CallAndWait(channel, Request{});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(channel.broken());
}

TEST(ChannelTest, ALostReplicaAnswersCallsInFlightUnavailable) {
  std::promise<void> entered;
  std::promise<void> release;
  auto release_f = release.get_future().share();
  auto listener = Listen([&](Request) {
    entered.set_value();
    release_f.wait();
    return Response::Text("late");
  });
  ASSERT_TRUE(listener);
  ReplicaChannel channel(listener->address(), "secret");
  auto answer = std::make_shared<Answer>();
  auto got = answer->get_future();
  channel.Call(Request{},
               [answer](absl::StatusOr<Response> r) { answer->set_value(std::move(r)); });
  entered.get_future().wait();
  std::thread stopper([&] { listener.reset(); });  // closes connections, waits for the handler
  ASSERT_EQ(got.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto result = got.get();
  release.set_value();
  stopper.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  // A broken channel answers at once.
  auto again = CallAndWait(channel, Request{});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ChannelTest, NobodyListeningIsUnavailableNamingTheAddress) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // a port nobody listens on
  std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  ReplicaChannel channel(address, "secret");
  auto got = CallAndWait(channel, Request{});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find(address), std::string::npos) << got.status();
}

TEST(ChannelTest, GarbageOnTheWireClosesOnlyThatConnection) {
  auto listener = Listen([](Request r) { return Response::Text("ok"); });
  ASSERT_TRUE(listener);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(std::stoi(listener->address().substr(listener->address().rfind(':') + 1)));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  char buf[16];
  EXPECT_LE(::recv(fd, buf, sizeof(buf), 0), 0) << "the listener should close it unanswered";
  ::close(fd);
  ReplicaChannel channel(listener->address(), "secret");
  auto got = CallAndWait(channel, Request{});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "ok");
}

int ThreadsOfThisProcess() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

int ConnectTo(const std::string& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(std::stoi(address.substr(address.rfind(':') + 1)));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(ChannelTest, SilentConnectionsGetNoThreadAndDoNotStopOthers) {
  auto listener = Listen([](Request r) { return Response::Text(r.body); });
  ASSERT_TRUE(listener);
  {  // a first call: the listener's threads for it exist
    ReplicaChannel warm(listener->address(), "secret");
    Request r;
    r.body = "warm";
    ASSERT_TRUE(CallAndWait(warm, r).ok());
  }
  int before = ThreadsOfThisProcess();
  std::vector<int> silent;
  for (int i = 0; i < 500; ++i) {  // more than the listener waits for at once
    int fd = ConnectTo(listener->address());
    if (fd >= 0) silent.push_back(fd);
  }
  ASSERT_GT(silent.size(), 400u);
  ReplicaChannel channel(listener->address(), "secret");
  Request r;
  r.body = "still served";
  auto got = CallAndWait(channel, r);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "still served");
  EXPECT_LE(ThreadsOfThisProcess(), before + 4) << "silent connections started threads";
  for (int fd : silent) ::close(fd);
}

}  // namespace
}  // namespace lumen::serve
