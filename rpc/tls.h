// TLS for every lumen gRPC connection (GCS, node managers, workers,
// drivers), from the environment so that every process of a cluster, and
// every worker a node manager starts, agrees without a flag each:
//
//   LUMEN_TLS_CERT   this process's certificate chain (PEM file)
//   LUMEN_TLS_KEY    its private key (PEM file)
//   LUMEN_TLS_CA     the CA that signed every node's certificate (PEM file)
//   LUMEN_TLS_SERVER_NAME  the name the certificates are issued for
//                    (default "lumen"; one name for the whole cluster, so a
//                    node's certificate need not list its addresses)
//
// All three files set: servers speak TLS and require a client certificate
// from the same CA (mutual TLS), clients present theirs and check the
// server's. None set: plaintext, for loopback and private networks. Some
// but not all: an error naming what is missing.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace lumen::rpc {

struct TlsConfig {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
  std::string server_name = "lumen";
  bool enabled() const { return !cert_pem.empty(); }
};

// The PEM file at `path`, named by environment variable `var`;
// InvalidArgument naming both when it cannot be read or is not PEM.
absl::StatusOr<std::string> ReadPemFile(const char* var, const std::string& path);

// Reads the environment and the files it names (once per process; later
// calls return the same answer).
const absl::StatusOr<TlsConfig>& TlsFromEnv();

}  // namespace lumen::rpc
