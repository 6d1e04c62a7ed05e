// The one seam for time. Components take a Clock* so tests can move time by
// hand (FakeClock) instead of sleeping. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace lumen {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic milliseconds, for timeouts and intervals.
  virtual int64_t NowMs() const = 0;
  // Milliseconds since the Unix epoch, for timestamps shown to people.
  virtual int64_t WallMs() const = 0;
};

class RealClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t WallMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // A process-wide instance; RealClock has no state.
  static RealClock* Get() {
    static RealClock clock;
    return &clock;
  }
};

class FakeClock : public Clock {
 public:
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t WallMs() const override { return 1'700'000'000'000 + now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_{1000};
};

}  // namespace lumen
