// ReplicaConnection: a connection to one replica's data plane as the
// dispatcher uses it (serve/channel.h has the real one over TCP; unit tests
// use fakes). Used on its owner's thread only (the dispatcher's event
// loop): `done` runs there exactly once, possibly inside Call when the
// connection is already broken. A lost connection answers every call in
// flight UNAVAILABLE and stays broken; the owner makes a new one.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

class ReplicaConnection {
 public:
  using Done = std::function<void(absl::StatusOr<Response>)>;
  virtual ~ReplicaConnection() = default;  // answers what is in flight CANCELLED
  virtual void Call(const Request& request, Done done) = 0;
  virtual bool broken() const = 0;
  virtual size_t in_flight() const = 0;
};

using ConnectionFactory =
    std::function<std::unique_ptr<ReplicaConnection>(const std::string& address)>;

}  // namespace lumen::serve
