// Process registry, the /metrics exporter and the families' wire form; see
// metrics.h.
#include "rpc/metrics.h"

#include <CivetServer.h>
#include <civetweb.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <mutex>

#include "common/event_loop.h"
#include "common/logging.h"
#include "prometheus/exposer.h"
#include "rpc/scrape_auth.h"

namespace lumen::rpc {

prometheus::Registry& ProcessRegistry() { return *ProcessRegistryPtr(); }

std::shared_ptr<prometheus::Registry> ProcessRegistryPtr() {
  static auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  return *registry;
}

// ---- LoopCollectable

struct LoopCollectable::State {
  std::mutex mu;
  EventLoop* loop = nullptr;  // null once closed
  LoopCollectable::Source collect;
};

LoopCollectable::LoopCollectable(EventLoop* loop, Source collect, std::chrono::milliseconds timeout)
    : state_(std::make_shared<State>()), timeout_(timeout) {
  state_->loop = loop;
  state_->collect = std::move(collect);
}

void LoopCollectable::Close() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->loop = nullptr;
}

std::vector<prometheus::MetricFamily> LoopCollectable::Collect() const {
  auto done = std::make_shared<std::promise<std::vector<prometheus::MetricFamily>>>();
  std::future<std::vector<prometheus::MetricFamily>> result = done->get_future();
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->loop == nullptr) return {};
    std::shared_ptr<State> state = state_;
    state_->loop->Post("metrics_collect", [state, done] {
      std::vector<prometheus::MetricFamily> families;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (state->loop != nullptr) families = state->collect();
      }
      done->set_value(std::move(families));
    });
  }
  if (result.wait_for(timeout_) != std::future_status::ready) {
    LUMEN_LOG_WARN("metrics: the component's loop did not answer a scrape within {} ms",
                   timeout_.count());
    return {};
  }
  return result.get();
}

// ---- MetricsExporter

namespace {

// Tokens by listening port: civetweb's callbacks see the connection, not the
// exporter (its user data is the CivetServer).
std::mutex& TokensMu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::map<int, std::string>& Tokens() {
  static auto* tokens = new std::map<int, std::string>;
  return *tokens;
}

// Runs before civetweb looks at a request further: 1 (answered here) for a
// caller without the token.
int CheckScrape(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  std::string token;
  {
    std::lock_guard<std::mutex> lock(TokensMu());
    auto it = Tokens().find(info->server_port);
    if (it == Tokens().end()) return 0;  // no token configured: tests only
    token = it->second;
  }
  const char* authorization = mg_get_header(conn, "Authorization");
  if (authorization != nullptr &&
      ScrapeAuthorized(std::string_view(authorization, strnlen(authorization, 8192)), token)) {
    return 0;
  }
  const std::string body =
      "this lumen process wants the cluster token: send 'Authorization: Bearer TOKEN' "
      "(Prometheus: authorization: {credentials_file: LUMEN_HOME/token})\n";
  mg_printf(conn,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"lumen\"\r\n"
            "Content-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
            body.size(), body.c_str());
  return 401;
}

}  // namespace

struct MetricsExporter::Impl {
  CivetCallbacks callbacks{};
  std::unique_ptr<prometheus::Exposer> exposer;
};

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::Start(Options options) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  e->impl_ = std::make_unique<Impl>();
  e->impl_->callbacks.begin_request = &CheckScrape;
  const std::string address = options.host + ":" + std::to_string(options.port);
  std::string listen = address;
  if (options.host.find(':') != std::string::npos) {
    listen = "[" + options.host + "]:" + std::to_string(options.port);
  }
  try {
    e->impl_->exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", listen, "num_threads",
                                 std::to_string(std::max(1, options.threads)), "request_timeout_ms",
                                 "10000", "max_request_size", "16384"},
        &e->impl_->callbacks);
  } catch (const std::exception& ex) {
    return absl::UnavailableError("metrics cannot listen on " + address + ": " + ex.what() +
                                  " (is the port in use, or the host not an address of this "
                                  "machine?)");
  }
  std::vector<int> ports = e->impl_->exposer->GetListeningPorts();
  if (ports.empty() || ports[0] == 0) {
    return absl::UnavailableError("metrics cannot listen on " + address);
  }
  e->port_ = ports[0];
  if (!options.token.empty()) {
    std::lock_guard<std::mutex> lock(TokensMu());
    Tokens()[e->port_] = options.token;
  }
  return e;
}

MetricsExporter::~MetricsExporter() {
  if (impl_) impl_->exposer.reset();
  std::lock_guard<std::mutex> lock(TokensMu());
  Tokens().erase(port_);
}

void MetricsExporter::Add(std::shared_ptr<prometheus::Collectable> collectable) {
  impl_->exposer->RegisterCollectable(collectable);
  held_.push_back(std::move(collectable));
}

std::shared_ptr<LoopCollectable> MetricsExporter::AddFromLoop(EventLoop* loop,
                                                              LoopCollectable::Source source) {
  auto collectable = std::make_shared<LoopCollectable>(loop, std::move(source));
  Add(collectable);
  return collectable;
}

// ---- building families

namespace {
prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}
}  // namespace

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
}

prometheus::MetricFamily CounterFamily(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Counter);
}

void AddSample(prometheus::MetricFamily* family, const std::map<std::string, std::string>& labels,
               double value) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (family->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else if (family->type == prometheus::MetricType::Gauge) {
    m.gauge.value = value;
  } else {
    m.untyped.value = value;
  }
  family->metric.push_back(std::move(m));
}

// ---- the wire form

void ToProto(const std::vector<prometheus::MetricFamily>& families,
             google::protobuf::RepeatedPtrField<proto::MetricFamily>* out) {
  for (const auto& f : families) {
    proto::MetricFamily* p = out->Add();
    p->set_name(f.name);
    p->set_help(f.help);
    switch (f.type) {
      case prometheus::MetricType::Counter:
        p->set_type(proto::MetricFamily::COUNTER);
        break;
      case prometheus::MetricType::Gauge:
        p->set_type(proto::MetricFamily::GAUGE);
        break;
      case prometheus::MetricType::Histogram:
        p->set_type(proto::MetricFamily::HISTOGRAM);
        break;
      default:
        p->set_type(proto::MetricFamily::UNTYPED);
    }
    for (const auto& m : f.metric) {
      proto::MetricSample* s = p->add_samples();
      for (const auto& l : m.label) (*s->mutable_labels())[l.name] = l.value;
      switch (f.type) {
        case prometheus::MetricType::Counter:
          s->set_value(m.counter.value);
          break;
        case prometheus::MetricType::Gauge:
          s->set_value(m.gauge.value);
          break;
        case prometheus::MetricType::Histogram:
          s->set_count(m.histogram.sample_count);
          s->set_sum(m.histogram.sample_sum);
          for (const auto& b : m.histogram.bucket) {
            s->add_bucket_bounds(b.upper_bound);
            s->add_bucket_counts(b.cumulative_count);
          }
          break;
        default:
          s->set_value(m.untyped.value);
      }
    }
  }
}

std::vector<prometheus::MetricFamily> FromProto(
    const google::protobuf::RepeatedPtrField<proto::MetricFamily>& families) {
  std::vector<prometheus::MetricFamily> out;
  for (const auto& p : families) {
    prometheus::MetricFamily f;
    f.name = p.name();
    f.help = p.help();
    switch (p.type()) {
      case proto::MetricFamily::COUNTER:
        f.type = prometheus::MetricType::Counter;
        break;
      case proto::MetricFamily::GAUGE:
        f.type = prometheus::MetricType::Gauge;
        break;
      case proto::MetricFamily::HISTOGRAM:
        f.type = prometheus::MetricType::Histogram;
        break;
      default:
        f.type = prometheus::MetricType::Untyped;
    }
    for (const auto& s : p.samples()) {
      prometheus::ClientMetric m;
      // Sorted, as the text format prints them in order.
      std::map<std::string, std::string> labels(s.labels().begin(), s.labels().end());
      for (const auto& [k, v] : labels) m.label.push_back({k, v});
      switch (f.type) {
        case prometheus::MetricType::Counter:
          m.counter.value = s.value();
          break;
        case prometheus::MetricType::Gauge:
          m.gauge.value = s.value();
          break;
        case prometheus::MetricType::Histogram: {
          m.histogram.sample_count = s.count();
          m.histogram.sample_sum = s.sum();
          int n = std::min(s.bucket_bounds_size(), s.bucket_counts_size());
          for (int i = 0; i < n; ++i) {
            m.histogram.bucket.push_back({s.bucket_counts(i), s.bucket_bounds(i)});
          }
          break;
        }
        default:
          m.untyped.value = s.value();
      }
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  }
  return out;
}

void MergeFamilies(std::vector<prometheus::MetricFamily>* into,
                   std::vector<prometheus::MetricFamily> extra,
                   const std::map<std::string, std::string>& labels) {
  for (auto& f : extra) {
    for (auto& m : f.metric) {
      for (const auto& [k, v] : labels) {
        auto same = [&](const prometheus::ClientMetric::Label& l) { return l.name == k; };
        m.label.erase(std::remove_if(m.label.begin(), m.label.end(), same), m.label.end());
        m.label.push_back({k, v});
      }
      std::sort(m.label.begin(), m.label.end());
    }
    auto it = std::find_if(into->begin(), into->end(),
                           [&](const prometheus::MetricFamily& g) { return g.name == f.name; });
    if (it == into->end()) {
      into->push_back(std::move(f));
    } else if (it->type == f.type) {
      for (auto& m : f.metric) it->metric.push_back(std::move(m));
    }
  }
}

}  // namespace lumen::rpc
