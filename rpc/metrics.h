// Prometheus metrics for lumen's processes (prometheus-cpp).
//
// Every process has one registry of its own figures (ProcessRegistry): the
// RPC server's latency and errors, a component's counters. The GCS and the
// node managers serve theirs over HTTP (MetricsExporter, Prometheus text
// format on /metrics) with what they read from their own state at scrape
// time (LoopCollectable). Workers and drivers have no port of their own:
// they send their registry, user metrics included (lumen/metrics.h), to
// their node manager, which exposes it with a worker_id label
// (ToProto/FromProto carry it).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "proto/node.pb.h"

namespace lumen {
class EventLoop;
}

namespace lumen::rpc {

// The process's own figures; lives as long as the process.
prometheus::Registry& ProcessRegistry();
std::shared_ptr<prometheus::Registry> ProcessRegistryPtr();

// Figures read when Prometheus scrapes: `collect` runs on `loop` (where the
// component's state lives) and the scrape waits for it up to `timeout`
// (then gets nothing from it this time, and a warning in the log).
class LoopCollectable : public prometheus::Collectable {
 public:
  using Source = std::function<std::vector<prometheus::MetricFamily>()>;
  LoopCollectable(EventLoop* loop, Source collect,
                  std::chrono::milliseconds timeout = std::chrono::seconds(2));
  std::vector<prometheus::MetricFamily> Collect() const override;
  // After Close() a scrape gets nothing (the loop is stopping).
  void Close();

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::chrono::milliseconds timeout_;
};

// Serves /metrics over HTTP (civetweb, through prometheus-cpp's Exposer):
// the collectables added (a family name must come from one of them only). Every scrape must carry
// the cluster token, as `Authorization: Bearer TOKEN` or as the password of
// basic auth (Prometheus: `authorization: {credentials_file: ...}` or
// `basic_auth: {password_file: ...}`); anything else gets 401 before its
// request is looked at further.
class MetricsExporter {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: any free port
    std::string token;
    int threads = 2;  // connections served at once; more wait
  };
  // The error names the address when it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsExporter>> Start(Options options);
  ~MetricsExporter();

  void Add(std::shared_ptr<prometheus::Collectable> collectable);
  // Adds figures read on `loop` (a LoopCollectable); Close() it as the loop
  // stops.
  std::shared_ptr<LoopCollectable> AddFromLoop(EventLoop* loop, LoopCollectable::Source source);
  int port() const { return port_; }

 private:
  MetricsExporter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::shared_ptr<prometheus::Collectable>> held_;
  int port_ = 0;
};

// Building families by hand (for LoopCollectable): a gauge or counter family
// and one sample of it.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
prometheus::MetricFamily CounterFamily(std::string name, std::string help);
void AddSample(prometheus::MetricFamily* family, const std::map<std::string, std::string>& labels,
               double value);

// Families as they travel from a worker to its node manager.
void ToProto(const std::vector<prometheus::MetricFamily>& families,
             google::protobuf::RepeatedPtrField<proto::MetricFamily>* out);
std::vector<prometheus::MetricFamily> FromProto(
    const google::protobuf::RepeatedPtrField<proto::MetricFamily>& families);

// Merges families of the same name (from several workers) into one each,
// adding `labels` to every sample of `extra` first. Samples of a family whose
// type differs from the first seen are dropped.
void MergeFamilies(std::vector<prometheus::MetricFamily>* into,
                   std::vector<prometheus::MetricFamily> extra,
                   const std::map<std::string, std::string>& labels);

}  // namespace lumen::rpc
