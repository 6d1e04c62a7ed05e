// MetricsPublisher: a model-layer replica's figures in the GCS KV
// (namespace "serve", key "model-metrics/<app>/<replica>"), written every
// two seconds from a thread of its own, where every proxy's /metrics picks
// them up (V2Ingress::ModelMetricsText), and deleted when it stops. Used by
// lumen.Model and lumen.Cache.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "lumen/serve.h"

namespace lumen::models {

class MetricsPublisher {
 public:
  // `fields` gives the value's members besides "at_ms" ("text": the
  // Prometheus lines, and whatever else readers want). Publishes nothing
  // outside a cluster or without an application.
  MetricsPublisher(serve::ReplicaContext context, std::function<Json()> fields);
  ~MetricsPublisher();

 private:
  void Run();
  std::string Key() const;

  serve::ReplicaContext context_;
  std::function<Json()> fields_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace lumen::models
