// For tests: a CA and one certificate it signs for the cluster name
// "lumen" (what LUMEN_TLS_SERVER_NAME defaults to), made by the openssl
// command in `dir`: ca.pem, node.pem, node.key. Sets LUMEN_TLS_CERT, _KEY
// and _CA to them when `set_env`.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace lumen::rpc {

// "" on success, else what openssl said.
inline std::string MakeTestCertificates(const std::string& dir, bool set_env) {
  std::string script =
      "cd " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
      "-subj /CN=lumen-test-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=lumen "
      "-addext subjectAltName=DNS:lumen"
      " && openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-copy_extensions copy -out node.pem";
  if (std::system(("(" + script + ") >" + dir + "/openssl.log 2>&1").c_str()) != 0) {
    std::ifstream in(dir + "/openssl.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return "openssl failed: " + ss.str();
  }
  if (set_env) {
    ::setenv("LUMEN_TLS_CERT", (dir + "/node.pem").c_str(), 1);
    ::setenv("LUMEN_TLS_KEY", (dir + "/node.key").c_str(), 1);
    ::setenv("LUMEN_TLS_CA", (dir + "/ca.pem").c_str(), 1);
  }
  return "";
}

}  // namespace lumen::rpc
