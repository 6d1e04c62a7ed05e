// Measures how long a node's loss interrupts its actors: the time from
// SIGKILL of a node manager to the GCS declaring the node dead, and to an
// actor that lived there answering a call again from another node.
//
//   build/release/bin/node_failover --node-timeout-ms 1000 --rounds 5
//
// Each round starts an actor on the newest node, kills that node and times
// a call made right after the kill (the caller resends it once the actor is
// back); a fresh node then joins for the next round.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "CLI/CLI.hpp"
#include "bench_tasks.h"
#include "lumen/api.h"
#include "worker/local_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

bool Dead(const lumen::NodeId& id) {
  auto nodes = lumen::Nodes();
  if (!nodes.ok()) return false;
  for (const auto& n : *nodes) {
    if (n.id == id) return !n.alive;
  }
  return false;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"time from killing a node manager to its actors answering elsewhere"};
  int64_t timeout_ms = 1000;
  int64_t heartbeat_ms = 100;
  int rounds = 5;
  app.add_option("--node-timeout-ms", timeout_ms, "GCS health-check timeout")
      ->check(CLI::Range(100, 60'000));
  app.add_option("--heartbeat-ms", heartbeat_ms, "node report period")
      ->check(CLI::Range(10, 10'000));
  app.add_option("--rounds", rounds, "kills to time")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  const lumen::worker::LocalNodeOptions spare{{{"CPU", 1}, {"spare", 1}}, 64 << 20};
  lumen::worker::LocalClusterOptions options;
  options.nodes = {lumen::worker::LocalNodeOptions{{{"CPU", 1}}, 64 << 20}, spare, spare};
  options.node_timeout_ms = timeout_ms;
  options.heartbeat_period_ms = heartbeat_ms;
  auto cluster = lumen::worker::LocalCluster::Start(options);
  if (!cluster.ok()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  lumen::Config config;
  config.address = (*cluster)->gcs_address();
  config.token = (*cluster)->token();
  if (absl::Status s = lumen::Init(config); !s.ok()) {
    std::fprintf(stderr, "lumen::Init: %s\n", s.ToString().c_str());
    return 1;
  }

  std::vector<double> declared, answered;
  for (int round = 0; round < rounds; ++round) {
    size_t victim = (*cluster)->num_nodes() - 1;
    lumen::NodeId victim_id = (*cluster)->node_id(victim);
    auto actor =
        lumen::Actor(bench::Target::Create)
            .SetResource("spare", 1)
            .SetMaxRestarts(-1)
            .SetMaxTaskRetries(-1)
            .SetSchedulingStrategy(lumen::SchedulingStrategy::NodeAffinity(victim_id, true))
            .Remote();
    auto warm = lumen::Get(actor.Task(&bench::Target::Ping).Remote(1), 60'000);
    if (!warm.ok()) {
      std::fprintf(stderr, "the actor did not start: %s\n", warm.status().ToString().c_str());
      return 1;
    }
    auto killed = Clock::now();
    (*cluster)->KillNode(victim);
    auto call = actor.Task(&bench::Target::Ping).Remote(2);
    std::thread watch([&] {
      while (!Dead(victim_id)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      declared.push_back(Ms(Clock::now() - killed));
    });
    auto back = lumen::Get(call, 120'000);
    answered.push_back(Ms(Clock::now() - killed));
    watch.join();
    if (!back.ok()) {
      std::fprintf(stderr, "the actor did not answer again: %s\n",
                   back.status().ToString().c_str());
      return 1;
    }
    std::printf("round %d: declared dead after %.0f ms, actor answered after %.0f ms\n", round + 1,
                declared.back(), answered.back());
    (void)lumen::Kill(actor);
    if (absl::Status s = (*cluster)->AddNode(spare); !s.ok()) {
      std::fprintf(stderr, "cannot add a node: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf(
      "node timeout %lld ms, heartbeat %lld ms: median declared dead %.0f ms, "
      "median actor answering again %.0f ms (%d rounds)\n",
      static_cast<long long>(timeout_ms), static_cast<long long>(heartbeat_ms), Median(declared),
      Median(answered), rounds);
  lumen::Shutdown();
  return 0;
}
