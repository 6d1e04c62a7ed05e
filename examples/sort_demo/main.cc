// lumen demo: sorts 16 million numbers with about a thousand tasks on a
// local cluster of three node processes. Chunks are generated and sorted as
// tasks, then merged pairwise by more tasks; every intermediate result is an
// object passed from task to task (and from node to node). The driver checks
// the result against the same numbers sorted here, then shows where the work
// ran.
//
//   sort_demo [--nodes N] [--numbers N] [--chunks N]
//   LUMEN_ADDRESS=host:port sort_demo   # on a running cluster instead
#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <string>
#include <thread>

#include "lumen/api.h"
#include "sort_tasks.h"

namespace {

struct Options {
  int nodes = 3;
  int numbers = 16 << 20;
  int chunks = 340;
};

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](int* out) {
      if (i + 1 >= argc) return false;
      *out = std::atoi(argv[++i]);
      return *out > 0;
    };
    bool ok = (a == "--nodes" && value(&o->nodes)) || (a == "--numbers" && value(&o->numbers)) ||
              (a == "--chunks" && value(&o->chunks));
    if (!ok) {
      std::cerr << "usage: sort_demo [--nodes N] [--numbers N] [--chunks N] (positive numbers)\n";
      return false;
    }
  }
  return true;
}

std::string Mb(int64_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << bytes / 1048576.0 << " MB";
  return out.str();
}

int64_t TotalTasks(const std::vector<lumen::NodeInfo>& nodes) {
  int64_t n = 0;
  for (const auto& node : nodes) n += node.tasks_executed;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!Parse(argc, argv, &o)) return 2;
  lumen::Config config;
  config.local_nodes = o.nodes;
  config.local_node_resources = {{"CPU", 2}};
  config.local_object_store_memory = int64_t{512} << 20;
  if (absl::Status s = lumen::Init(config); !s.ok()) {
    std::cerr << "lumen::Init: " << s << "\n";
    return 1;
  }
  auto before = lumen::Nodes();
  int64_t tasks_before = before.ok() ? TotalTasks(*before) : 0;
  std::cout << "lumen demo: distributed merge sort on " << (before.ok() ? before->size() : 0)
            << " node processes\n"
            << "  " << o.numbers << " numbers in " << o.chunks << " chunks -> " << 3 * o.chunks - 1
            << " tasks\n";

  auto start = std::chrono::steady_clock::now();
  int per_chunk = o.numbers / o.chunks;
  std::deque<lumen::ObjectRef<std::vector<uint32_t>>> pending;
  for (int c = 0; c < o.chunks; ++c) {
    int n = c + 1 == o.chunks ? o.numbers - per_chunk * (o.chunks - 1) : per_chunk;
    auto chunk = lumen::Task(sort_demo::Generate).Remote(n, static_cast<uint64_t>(c));
    pending.push_back(lumen::Task(sort_demo::SortChunk).Remote(chunk));
  }
  while (pending.size() > 1) {
    auto a = std::move(pending.front());
    pending.pop_front();
    auto b = std::move(pending.front());
    pending.pop_front();
    pending.push_back(lumen::Task(sort_demo::Merge).Remote(a, b));
  }
  auto sorted = lumen::Get(pending.front());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!sorted.ok()) {
    std::cerr << "the sort failed: " << sorted.status() << "\n";
    lumen::Shutdown();
    return 1;
  }

  // Check against the same numbers sorted here.
  std::vector<uint32_t> expected;
  for (int c = 0; c < o.chunks; ++c) {
    int n = c + 1 == o.chunks ? o.numbers - per_chunk * (o.chunks - 1) : per_chunk;
    auto part = sort_demo::Generate(n, static_cast<uint64_t>(c));
    expected.insert(expected.end(), part.begin(), part.end());
  }
  std::sort(expected.begin(), expected.end());
  bool correct = *sorted == expected;
  std::cout << "  " << (correct ? "sorted and verified" : "WRONG RESULT") << " in " << std::fixed
            << std::setprecision(2) << seconds << " s: min " << sorted->front() << ", median "
            << (*sorted)[sorted->size() / 2] << ", max " << sorted->back() << "\n\n";

  // Leases come back just after the last results; wait for their counts.
  int64_t submitted = 3 * o.chunks - 1;
  absl::StatusOr<std::vector<lumen::NodeInfo>> nodes = lumen::Nodes();
  for (int i = 0; i < 200 && nodes.ok() && TotalTasks(*nodes) - tasks_before < submitted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    nodes = lumen::Nodes();
  }
  if (nodes.ok()) {
    std::cout << "  " << std::left << std::setw(20) << "node" << std::setw(8) << "tasks"
              << std::setw(9) << "workers"
              << "pulled from other nodes\n";
    for (const auto& n : *nodes) {
      std::cout << "  " << std::setw(20) << (n.id.Short() + (n.is_head ? " (head)" : ""))
                << std::setw(8) << n.tasks_executed << std::setw(9) << n.num_workers
                << Mb(n.bytes_pulled) << " in " << n.objects_pulled << " objects\n";
    }
  }
  lumen::Shutdown();
  return correct ? 0 : 1;
}
