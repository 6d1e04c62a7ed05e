#include "common/event_loop.h"

#include <atomic>
#include <future>
#include <vector>

#include "gtest/gtest.h"

namespace lumen {
namespace {

TEST(EventLoopTest, RunsPostedHandlersInOrderOnItsThread) {
  EventLoop loop("test");
  loop.Start();
  std::vector<int> order;
  std::promise<void> done;
  for (int i = 0; i < 100; ++i) {
    loop.Post("append", [&, i] {
      EXPECT_TRUE(loop.IsCurrentThread());
      order.push_back(i);
      if (i == 99) done.set_value();
    });
  }
  done.get_future().wait();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_FALSE(loop.IsCurrentThread());
  // Stats are recorded when a handler returns: read them after the next one.
  std::promise<void> after;
  loop.Post("barrier", [&] { after.set_value(); });
  after.get_future().wait();
  EXPECT_NE(loop.DebugString().find("append count=100"), std::string::npos) << loop.DebugString();
}

TEST(EventLoopTest, DelayedAndPeriodicHandlers) {
  EventLoop loop("test");
  loop.Start();
  std::promise<std::chrono::steady_clock::time_point> fired;
  auto start = std::chrono::steady_clock::now();
  loop.PostAfter("later", std::chrono::milliseconds(30),
                 [&] { fired.set_value(std::chrono::steady_clock::now()); });
  EXPECT_GE(fired.get_future().get() - start, std::chrono::milliseconds(30));

  std::atomic<int> ticks{0};
  std::promise<void> three;
  std::unique_ptr<PeriodicTimer> timer;
  loop.Post("arm", [&] {
    timer = loop.RunEvery("tick", std::chrono::milliseconds(5), [&] {
      if (++ticks == 3) three.set_value();
    });
  });
  three.get_future().wait();
  std::promise<void> cancelled;
  loop.Post("cancel", [&] {
    timer.reset();
    cancelled.set_value();
  });
  cancelled.get_future().wait();
  int after_cancel = ticks;
  std::promise<void> later;
  loop.PostAfter("check", std::chrono::milliseconds(30), [&] { later.set_value(); });
  later.get_future().wait();
  EXPECT_EQ(ticks, after_cancel);
}

TEST(EventLoopTest, StopDropsQueuedHandlersAndIsIdempotent) {
  auto loop = std::make_unique<EventLoop>("test");
  loop->Start();
  std::atomic<bool> ran{false};
  loop->PostAfter("never", std::chrono::seconds(60), [&] { ran = true; });
  loop->Stop();
  loop->Stop();
  loop.reset();
  EXPECT_FALSE(ran);
}

TEST(EventLoopTest, OneShotTimerRunsTheLastArmingOnceAndCancels) {
  EventLoop loop("test");
  loop.Start();
  std::unique_ptr<OneShotTimer> timer;
  std::atomic<int> first{0}, second{0};
  std::promise<void> fired;
  loop.Post("arm", [&] {
    timer = loop.MakeTimer("deadline");
    timer->Arm(std::chrono::milliseconds(10), [&] { first++; });
    EXPECT_TRUE(timer->armed());
    // Re-arming replaces the first handler: only the second runs.
    timer->Arm(std::chrono::milliseconds(20), [&] {
      second++;
      EXPECT_FALSE(timer->armed());
      fired.set_value();
    });
  });
  fired.get_future().wait();
  std::promise<void> cancelled;
  std::atomic<int> third{0};
  loop.Post("cancel", [&] {
    timer->Arm(std::chrono::milliseconds(10), [&] { third++; });
    timer->Cancel();
    EXPECT_FALSE(timer->armed());
  });
  // A later handler on the loop shows the cancelled one never ran.
  loop.PostAfter("check", std::chrono::milliseconds(40), [&] { cancelled.set_value(); });
  cancelled.get_future().wait();
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(third, 0);
  loop.Post("destroy", [&] { timer.reset(); });
  loop.Stop();
}

}  // namespace
}  // namespace lumen
