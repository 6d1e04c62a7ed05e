// lumen::Config: how a program joins (or starts) a lumen cluster.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lumen {

struct Config {
  // "host:port" of a running cluster's GCS. Empty: $LUMEN_ADDRESS; without
  // that, Init() starts a private local cluster and Shutdown() stops it.
  std::string address;
  // The cluster token. Empty: $LUMEN_TOKEN, then the token file that
  // `lumen start --head` wrote in $LUMEN_HOME (default /tmp/lumen-<uid>).
  std::string token;
  // Shared libraries to ship as the job's code package besides those found
  // automatically (every library that registered a LUMEN_REMOTE function).
  // Listed ones load first, so put dependencies here.
  std::vector<std::string> code_paths;

  // Private local cluster only: how many node processes, and the resources
  // of each (empty: detected from this machine).
  int local_nodes = 1;
  std::map<std::string, double> local_node_resources;
  int64_t local_object_store_memory = 0;  // bytes per node; 0: automatic

  // The driver's own log level on stderr: debug, info, warning, error.
  std::string log_level = "warning";
  // How long Init() may take to reach the cluster.
  int64_t connect_timeout_ms = 15'000;
};

}  // namespace lumen
