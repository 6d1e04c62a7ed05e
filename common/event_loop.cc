// EventLoop on Boost.Asio's io_context; see event_loop.h.
#include "common/event_loop.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

namespace lumen {

namespace asio = boost::asio;

class EventLoop::Impl {
 public:
  struct Stat {
    uint64_t count = 0;
    int64_t total_ns = 0;
    int64_t max_ns = 0;
  };

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  mutable std::mutex mu;
  std::map<const char*, Stat> stats;  // keyed by the literal's address

  void Run(const char* name, const std::function<void()>& fn) {
    auto start = std::chrono::steady_clock::now();
    fn();
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
    std::lock_guard<std::mutex> lock(mu);
    Stat& s = stats[name];
    s.count++;
    s.total_ns += ns;
    s.max_ns = std::max(s.max_ns, ns);
  }
};

namespace {

class AsioPeriodicTimer : public PeriodicTimer {
 public:
  AsioPeriodicTimer(EventLoop::Impl* impl, const char* name, std::chrono::milliseconds period,
                    std::function<void()> fn)
      : impl_(impl), name_(name), period_(period), fn_(std::move(fn)), timer_(impl->io) {
    alive_ = std::make_shared<bool>(true);
    Arm();
  }
  ~AsioPeriodicTimer() override {
    *alive_ = false;
    boost::system::error_code ignored;
    timer_.cancel(ignored);
  }

 private:
  void Arm() {
    timer_.expires_after(period_);
    std::weak_ptr<bool> alive = alive_;
    timer_.async_wait([this, alive](const boost::system::error_code& ec) {
      auto a = alive.lock();
      if (ec || !a || !*a) return;
      impl_->Run(name_, fn_);
      if (*a) Arm();
    });
  }

  EventLoop::Impl* impl_;
  const char* name_;
  std::chrono::milliseconds period_;
  std::function<void()> fn_;
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
};

class AsioOneShotTimer : public OneShotTimer {
 public:
  AsioOneShotTimer(EventLoop::Impl* impl, const char* name)
      : impl_(impl), name_(name), timer_(impl->io), alive_(std::make_shared<bool>(true)) {}
  ~AsioOneShotTimer() override {
    *alive_ = false;
    Cancel();
  }
  void Arm(std::chrono::milliseconds delay, std::function<void()> fn) override {
    Cancel();
    armed_ = true;
    uint64_t generation = ++generation_;
    timer_.expires_after(std::max(delay, std::chrono::milliseconds(0)));
    std::weak_ptr<bool> alive = alive_;
    timer_.async_wait(
        [this, alive, generation, fn = std::move(fn)](const boost::system::error_code& ec) {
          auto a = alive.lock();
          if (ec || !a || !*a || generation != generation_) return;
          armed_ = false;
          impl_->Run(name_, fn);
        });
  }
  void Cancel() override {
    armed_ = false;
    ++generation_;
    boost::system::error_code ignored;
    timer_.cancel(ignored);
  }
  bool armed() const override { return armed_; }

 private:
  EventLoop::Impl* impl_;
  const char* name_;
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
  uint64_t generation_ = 0;
  bool armed_ = false;
};

}  // namespace

bool LoopGuard::Post(const char* name, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (loop_ == nullptr) return false;
  loop_->Post(name, std::move(fn));
  return true;
}

void LoopGuard::Close() {
  absl::MutexLock lock(&mu_);
  loop_ = nullptr;
}

std::unique_ptr<OneShotTimer> EventLoop::MakeTimer(const char* name) {
  return std::make_unique<AsioOneShotTimer>(impl_.get(), name);
}

EventLoop::EventLoop(std::string name) : name_(std::move(name)), impl_(std::make_unique<Impl>()) {}

EventLoop::~EventLoop() { Stop(); }

asio::io_context& EventLoop::io_context() { return impl_->io; }

void EventLoop::Start() {
  std::atomic<bool> started{false};
  thread_ = std::thread([this, &started] {
    thread_id_ = std::this_thread::get_id();
    started = true;
    impl_->io.run();
  });
  // IsCurrentThread() is right as soon as Start returns.
  while (!started) std::this_thread::yield();
}

void EventLoop::Stop() {
  impl_->guard.reset();
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

void EventLoop::Post(const char* name, std::function<void()> fn) {
  asio::post(impl_->io, [impl = impl_.get(), name, fn = std::move(fn)] { impl->Run(name, fn); });
}

void EventLoop::PostAfter(const char* name, std::chrono::milliseconds delay,
                          std::function<void()> fn) {
  auto timer = std::make_shared<asio::steady_timer>(impl_->io, delay);
  timer->async_wait(
      [impl = impl_.get(), name, timer, fn = std::move(fn)](const boost::system::error_code& ec) {
        if (!ec) impl->Run(name, fn);
      });
}

std::unique_ptr<PeriodicTimer> EventLoop::RunEvery(const char* name,
                                                   std::chrono::milliseconds period,
                                                   std::function<void()> fn) {
  return std::make_unique<AsioPeriodicTimer>(impl_.get(), name, period, std::move(fn));
}

std::string EventLoop::DebugString() const {
  std::map<std::string, Impl::Stat> merged;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [name, s] : impl_->stats) {
      Impl::Stat& m = merged[name];
      m.count += s.count;
      m.total_ns += s.total_ns;
      m.max_ns = std::max(m.max_ns, s.max_ns);
    }
  }
  std::vector<std::pair<std::string, Impl::Stat>> rows(merged.begin(), merged.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.total_ns > b.second.total_ns; });
  std::ostringstream out;
  out << "event loop " << name_ << ":\n";
  for (const auto& [name, s] : rows) {
    out << "  " << name << " count=" << s.count << " total_ms=" << s.total_ns / 1000000
        << " mean_us=" << (s.count ? s.total_ns / int64_t(s.count) / 1000 : 0)
        << " max_us=" << s.max_ns / 1000 << "\n";
  }
  return out.str();
}

}  // namespace lumen
