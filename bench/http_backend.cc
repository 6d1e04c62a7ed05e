// A minimal C++ HTTP backend (the same Beast server the lumen proxy uses)
// that answers every request with its body: what nginx proxies to in
// bench/serve_bench.cc, so both proxies front equivalent no-op work.
//   http_backend PORT
#include <signal.h>

#include <cstdlib>
#include <iostream>

#include "serve/http_server.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: http_backend PORT\n";
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  lumen::serve::HttpServer server(
      {.port = std::atoi(argv[1]), .threads = 1},
      [](lumen::serve::Request r, lumen::serve::HttpServer::Reply reply) {
        lumen::serve::Response out;
        out.body = std::move(r.body);
        reply(std::move(out));
      });
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::cout << "port=" << server.port() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
