// TLS settings from the environment; see tls.h.
#include "rpc/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lumen::rpc {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

absl::StatusOr<TlsConfig> Load() {
  const std::string cert = Env("LUMEN_TLS_CERT"), key = Env("LUMEN_TLS_KEY"),
                    ca = Env("LUMEN_TLS_CA");
  TlsConfig tls;
  if (std::string name = Env("LUMEN_TLS_SERVER_NAME"); !name.empty()) tls.server_name = name;
  if (cert.empty() && key.empty() && ca.empty()) return tls;  // plaintext
  if (cert.empty() || key.empty() || ca.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs all three of LUMEN_TLS_CERT, LUMEN_TLS_KEY and LUMEN_TLS_CA (PEM files); "
        "set the missing ones, or none for plaintext");
  }
  auto c = ReadPemFile("LUMEN_TLS_CERT", cert);
  if (!c.ok()) return c.status();
  auto k = ReadPemFile("LUMEN_TLS_KEY", key);
  if (!k.ok()) return k.status();
  auto a = ReadPemFile("LUMEN_TLS_CA", ca);
  if (!a.ok()) return a.status();
  tls.cert_pem = std::move(*c);
  tls.key_pem = std::move(*k);
  tls.ca_pem = std::move(*a);
  return tls;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const char* var, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(std::string(var) + "=" + path + ": cannot read it");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string pem = ss.str();
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(std::string(var) + "=" + path + ": not a PEM file");
  }
  return pem;
}

const absl::StatusOr<TlsConfig>& TlsFromEnv() {
  static const absl::StatusOr<TlsConfig> tls = Load();
  return tls;
}

}  // namespace lumen::rpc
