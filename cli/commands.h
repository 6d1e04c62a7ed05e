// The `lumen` command's subcommands. Each returns the process exit code and
// prints what went wrong (and how to fix it) on stderr.
#pragma once

#include <cstdint>
#include <string>

namespace lumen::cli {

struct StartFlags {
  bool head = false;
  std::string address;  // joining: the head's GCS host:port
  std::string host = "127.0.0.1";
  int port = 6389;  // head: GCS port
  std::string resources;
  std::string token;
  int64_t object_store_memory = 0;
  int64_t node_timeout_ms = 4000;
  int64_t heartbeat_ms = 500;
  std::string storage;  // head: where the GCS keeps its tables ("" = memory)
};

struct StatusFlags {
  std::string address;
  std::string token;
};

int Start(const StartFlags& flags);
int Stop();
int Status(const StatusFlags& flags);

struct DrainFlags {
  std::string node;  // id prefix or node manager HOST:PORT
  std::string address;
  std::string token;
  int64_t timeout_s = 300;
};
// Drains a node and waits until it has left.
int Drain(const DrainFlags& flags);

struct GcsServerFlags {
  std::string host = "127.0.0.1";
  int port = 6389;
  std::string session_dir;
  int64_t node_timeout_ms = 4000;
  int64_t heartbeat_ms = 500;
  std::string storage;
};
struct NodeManagerFlags {
  std::string gcs;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string resources;
  int64_t object_store_memory = 0;
  bool head = false;
  std::string session_dir;
};

// Foreground daemons; `lumen start` and local clusters run these. They read
// the cluster token from $LUMEN_TOKEN and print a ready line on the ready
// pipe once serving.
int RunGcsServer(const GcsServerFlags& flags);
int RunNodeManager(const NodeManagerFlags& flags);

}  // namespace lumen::cli
