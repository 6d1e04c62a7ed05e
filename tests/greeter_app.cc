// A serving application that no test process starts with: the serve
// instance ships it through the cluster to its replicas (ShippedFile).
#include <unistd.h>

#include "lumen/serve.h"

class Greeter {
 public:
  static Greeter* Create(const lumen::Json& init_args) {
    auto* g = new Greeter();
    g->greeting_ = init_args.value("greeting", "hello");
    return g;
  }
  lumen::serve::Response Call(const lumen::serve::Request& req) {
    return lumen::serve::Response::FromJson(
        {{"text", greeting_ + ", " + req.body}, {"pid", getpid()}});
  }

 private:
  std::string greeting_;
};
LUMEN_DEPLOYMENT(Greeter);
