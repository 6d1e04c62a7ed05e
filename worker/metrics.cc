// User metrics (lumen/metrics.h) on the process registry, which the core
// worker sends to its node manager (rpc/metrics.h).
#include "lumen/metrics.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "prometheus/check_names.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "rpc/metrics.h"

namespace lumen {
namespace internal {

struct MetricImpl {
  std::string name;
  std::set<std::string> keys;
  prometheus::Family<prometheus::Counter>* counter = nullptr;
  prometheus::Family<prometheus::Gauge>* gauge = nullptr;
  prometheus::Family<prometheus::Histogram>* histogram = nullptr;
  prometheus::Histogram::BucketBoundaries bounds;

  std::map<std::string, std::string> Labels(const MetricTags& tags) const {
    std::map<std::string, std::string> labels;
    for (const auto& k : keys) labels[k] = "";
    for (const auto& [k, v] : tags) {
      if (!keys.count(k)) {
        std::string declared;
        for (const auto& d : keys) declared += (declared.empty() ? "" : ", ") + d;
        throw std::invalid_argument(
            "metric " + name + ": tag '" + k +
            "' was not declared (its tag keys: " + (declared.empty() ? "none" : declared) + ")");
      }
      labels[k] = v;
    }
    return labels;
  }
  void CheckFinite(double value) const {
    if (!std::isfinite(value)) {
      throw std::invalid_argument("metric " + name + ": the value must be finite");
    }
  }
};

}  // namespace internal

namespace {

std::shared_ptr<internal::MetricImpl> Declare(const std::string& name,
                                              const std::vector<std::string>& tag_keys) {
  if (!prometheus::CheckMetricName(name)) {
    throw std::invalid_argument("metric name '" + name +
                                "' is not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  if (name.rfind("lumen_", 0) == 0) {
    throw std::invalid_argument("metric name '" + name +
                                "': names starting with lumen_ are lumen's own; choose another");
  }
  auto impl = std::make_shared<internal::MetricImpl>();
  impl->name = name;
  for (const auto& k : tag_keys) {
    if (!prometheus::CheckLabelName(k) || k == "node_id" || k == "worker_id") {
      throw std::invalid_argument("metric " + name + ": tag key '" + k +
                                  "' is not allowed (Prometheus label names are "
                                  "[a-zA-Z_][a-zA-Z0-9_]*, not starting with __; node_id and "
                                  "worker_id are lumen's)");
    }
    impl->keys.insert(k);
  }
  return impl;
}

std::string Help(const std::string& description, const std::string& unit) {
  std::string help = description.empty() ? "(no description)" : description;
  if (!unit.empty()) help += " (" + unit + ")";
  return help;
}

// prometheus-cpp says "Family name already exists with different type" and
// the like; say which metric.
template <typename F>
auto Register(const std::string& name, F register_family) {
  try {
    return register_family();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("metric " + name + ": " + e.what() +
                                " (was the name declared before as another kind?)");
  }
}

}  // namespace

Counter::Counter(const std::string& name, const std::string& description, const std::string& unit,
                 const std::vector<std::string>& tag_keys)
    : impl_(Declare(name, tag_keys)) {
  impl_->counter = Register(name, [&] {
    return &prometheus::BuildCounter()
                .Name(name)
                .Help(Help(description, unit))
                .Register(rpc::ProcessRegistry());
  });
}

void Counter::Inc(double value, const MetricTags& tags) {
  impl_->CheckFinite(value);
  if (value < 0) {
    throw std::invalid_argument("counter " + impl_->name + ": Inc(" + std::to_string(value) +
                                "): a counter only goes up (use a Gauge)");
  }
  impl_->counter->Add(impl_->Labels(tags)).Increment(value);
}

Gauge::Gauge(const std::string& name, const std::string& description, const std::string& unit,
             const std::vector<std::string>& tag_keys)
    : impl_(Declare(name, tag_keys)) {
  impl_->gauge = Register(name, [&] {
    return &prometheus::BuildGauge()
                .Name(name)
                .Help(Help(description, unit))
                .Register(rpc::ProcessRegistry());
  });
}

void Gauge::Set(double value, const MetricTags& tags) {
  impl_->CheckFinite(value);
  impl_->gauge->Add(impl_->Labels(tags)).Set(value);
}

Histogram::Histogram(const std::string& name, const std::string& description,
                     const std::string& unit, const std::vector<double>& boundaries,
                     const std::vector<std::string>& tag_keys)
    : impl_(Declare(name, tag_keys)) {
  if (boundaries.empty()) {
    throw std::invalid_argument("histogram " + name + ": give at least one bucket boundary");
  }
  for (size_t i = 0; i < boundaries.size(); ++i) {
    if (!std::isfinite(boundaries[i]) || (i > 0 && boundaries[i] <= boundaries[i - 1])) {
      throw std::invalid_argument("histogram " + name +
                                  ": boundaries must be finite and increasing");
    }
  }
  impl_->bounds = boundaries;
  impl_->histogram = Register(name, [&] {
    return &prometheus::BuildHistogram()
                .Name(name)
                .Help(Help(description, unit))
                .Register(rpc::ProcessRegistry());
  });
}

void Histogram::Observe(double value, const MetricTags& tags) {
  impl_->CheckFinite(value);
  impl_->histogram->Add(impl_->Labels(tags), impl_->bounds).Observe(value);
}

}  // namespace lumen
