// MetricsPublisher; see metrics_publisher.h.
#include "models/metrics_publisher.h"

#include <chrono>

#include "lumen/internal/runtime.h"
#include "serve/route_table.h"

namespace lumen::models {
namespace {
constexpr auto kPeriod = std::chrono::seconds(2);
}

MetricsPublisher::MetricsPublisher(serve::ReplicaContext context, std::function<Json()> fields)
    : context_(std::move(context)), fields_(std::move(fields)) {
  if (lumen::internal::CurrentRuntime() != nullptr && !context_.app.empty()) {
    thread_ = std::thread([this] { Run(); });
  }
}

MetricsPublisher::~MetricsPublisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  if (auto* rt = lumen::internal::CurrentRuntime()) {
    (void)rt->KvDel(serve::kServeKvNamespace, Key());
  }
}

std::string MetricsPublisher::Key() const {
  return "model-metrics/" + context_.app + "/" + context_.replica;
}

void MetricsPublisher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, kPeriod, [this] { return stop_; })) {
    lock.unlock();
    if (auto* rt = lumen::internal::CurrentRuntime()) {
      Json value = fields_();
      value["at_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      (void)rt->KvPut(serve::kServeKvNamespace, Key(),
                      value.dump(-1, ' ', false, Json::error_handler_t::replace));
    }
    lock.lock();
  }
}

}  // namespace lumen::models
