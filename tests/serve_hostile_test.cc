// Serving under attack, on a real two-node cluster: every finding of the
// review that made serving "nothing takes down" is replayed here while a
// steady stream of normal requests runs, and that stream must not see one
// failure, nor may any node or serve process die or restart.
//
//   GET /%ff and other bytes that are not UTF-8 (proxy, admin API, a
//   replica's exception message); the unauthenticated admin PUT that names
//   a library; a Host that is not loopback; four unauthenticated 256 MiB
//   gRPC messages to the GCS; 2,000 silent data-plane connections; a YAML
//   alias bomb; .inf and 1e300 timeouts; user_config bytes that are not UTF-8.
#include <arpa/inet.h>
#include <sys/resource.h>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "serve_fixture.h"

namespace lumen {
namespace {

class HostileTest : public ServeFixture {
 protected:
  // Restarts of serve's actors (manager, controllers, proxies) by name.
  std::map<std::string, int> ServeRestarts() {
    std::map<std::string, int> restarts;
    std::promise<void> listed;
    internal::CurrentRuntime()->ListActorsAsync(
        "serve", "", [&](absl::StatusOr<std::vector<internal::ActorStateInfo>> r) {
          if (r.ok()) {
            for (const auto& a : *r) {
              if (a.state != internal::ActorStateInfo::kDead) restarts[a.name] = a.num_restarts;
            }
          }
          listed.set_value();
        });
    listed.get_future().wait();
    return restarts;
  }
  // Each replica's id and data-plane address.
  std::set<std::string> Replicas() {
    std::set<std::string> out;
    Json s = Status();
    for (const auto& r : s["applications"]["echo"]["deployments"]["Echo"]["replicas"]) {
      out.insert(r.value("id", "") + "@" + r.value("address", ""));
    }
    return out;
  }
  int AliveNodes() {
    int alive = 0;
    auto nodes = Nodes(/*ask_each_node=*/false);
    if (!nodes.ok()) return -1;
    for (const auto& n : *nodes) alive += n.alive;
    return alive;
  }
  absl::StatusOr<Response> Admin(const std::string& method, const std::string& path,
                                 const std::string& body,
                                 std::map<std::string, std::string> headers) {
    std::string host = admin_address_.substr(0, admin_address_.rfind(':'));
    int port = std::stoi(admin_address_.substr(admin_address_.rfind(':') + 1));
    return HttpCall(host, port, method, path, body, headers);
  }
  std::map<std::string, std::string> Authorized() {
    return {{"authorization", "Bearer " + internal::CurrentRuntime()->ClusterToken()}};
  }
};

int Connect(const std::string& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  ::inet_pton(AF_INET, address.substr(0, address.rfind(':')).c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(HostileTest, EveryFindingIsReplayedAndNormalTrafficNeverFails) {
  Deploy(EchoApp(", num_replicas: 2"));
  const int nodes = AliveNodes();
  ASSERT_EQ(nodes, 2);
  const std::set<std::string> replicas_before = Replicas();
  ASSERT_EQ(replicas_before.size(), 2u);
  const std::map<std::string, int> restarts_before = ServeRestarts();
  ASSERT_FALSE(restarts_before.empty());
  Load load;
  StartLoad(&load, "/echo", 2);
  ASSERT_TRUE(WaitUntil([&] { return load.ok > 20; }));

  // 1. Bytes that are not UTF-8: in a path, to the proxy and the admin API.
  for (const char* path : {"/%ff", "/echo/%ff%fe", "/%c3%28?%ff=%fe"}) {
    auto r = GetPath(path);
    ASSERT_TRUE(r.ok()) << path << ": " << r.status();
    EXPECT_TRUE(r->status == 404 || r->status == 200) << path << " " << r->status;
    auto a = Admin("GET", std::string("/api/serve/applications") + path, "", Authorized());
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_GE(a->status, 400);
  }
  // ...in a replica's exception message.
  auto thrown = Post("/echo/fail_with_body", "bad \xff\xfe bytes");
  ASSERT_TRUE(thrown.ok()) << thrown.status();
  EXPECT_EQ(thrown->status, 500) << thrown->body;
  EXPECT_TRUE(Json::accept(thrown->body)) << "the error is valid JSON: " << thrown->body;

  // 2. The admin API: no token, a wrong one, a foreign Host; a stranger's
  // upload is refused before its body is read.
  std::string deploy_body = serve::DumpJson(
      {{"config",
        "applications:\n  - {name: evil, code: /tmp/evil.so, deployments: [{name: X}]}\n"},
       {"file", "evil.yaml"}});
  auto unauth =
      Admin("PUT", "/api/serve/applications", deploy_body, {{"x-lumen-base-dir", "/tmp"}});
  ASSERT_TRUE(unauth.ok());
  EXPECT_EQ(unauth->status, 401) << unauth->body;
  auto wrong = Admin("PUT", "/api/serve/applications", deploy_body,
                     {{"authorization", "Bearer not-the-token"}});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  auto foreign = Admin("GET", "/api/serve/applications", "",
                       {{"authorization", "Bearer " + internal::CurrentRuntime()->ClusterToken()},
                        {"host", "evil.example:80"}});
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(foreign->status, 421);
  EXPECT_FALSE(Status()["applications"].contains("evil"));

  // 3. Four unauthenticated 256 MiB messages to the GCS, at once.
  {
    auto channel_args = grpc::ChannelArguments();
    channel_args.SetMaxSendMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(cluster_->gcs_address(),
                                             grpc::InsecureChannelCredentials(), channel_args);
    grpc::GenericStub stub(channel);
    std::string big(256 << 20, 'x');
    grpc::Slice slice(big);
    grpc::ByteBuffer request(&slice, 1);
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ByteBuffer>> replies;
    std::vector<std::future<grpc::Status>> results;
    std::vector<std::shared_ptr<std::promise<grpc::Status>>> promises;
    for (int i = 0; i < 4; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      contexts.back()->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      replies.push_back(std::make_unique<grpc::ByteBuffer>());
      promises.push_back(std::make_shared<std::promise<grpc::Status>>());
      results.push_back(promises.back()->get_future());
      auto p = promises.back();
      stub.UnaryCall(contexts.back().get(), "/lumen.proto.GcsKvService/KvPut", grpc::StubOptions(),
                     &request, replies.back().get(), [p](grpc::Status s) { p->set_value(s); });
    }
    for (auto& f : results) {
      grpc::Status s = f.get();
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    }
  }

  // 4. 2,000 silent connections to a replica's data plane.
  {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 8192);
    ::setrlimit(RLIMIT_NOFILE, &limit);
    std::string address =
        Status()["applications"]["echo"]["deployments"]["Echo"]["replicas"][0]["address"];
    ASSERT_FALSE(address.empty());
    std::vector<int> fds;
    for (int i = 0; i < 2000; ++i) {
      int fd = Connect(address);
      if (fd >= 0) fds.push_back(fd);
    }
    EXPECT_GT(fds.size(), 1000u);
    ASSERT_TRUE(WaitUntil([&] { return load.ok > 0 && Running("echo", "Echo") == 2; }));
    int at = load.ok;
    ASSERT_TRUE(WaitUntil([&] { return load.ok > at + 50; })) << "traffic flows meanwhile";
    for (int fd : fds) ::close(fd);
  }

  // 5. Configs: an alias bomb, infinite and huge timeouts, bytes that are
  // not UTF-8 in user_config. Each is refused with its line; nothing dies.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + "]\n";
  }
  bomb +=
      "applications:\n  - {name: bomb, code: x.so, deployments: [{name: X, user_config: *j}]}\n";
  std::vector<std::pair<std::string, std::string>> bad_configs = {
      {bomb, "alias"},
      {"applications:\n  - name: t\n    code: x.so\n    deployments:\n      - {name: X, "
       "request_timeout_s: .inf}\n",
       "request_timeout_s"},
      {"applications:\n  - name: t\n    code: x.so\n    deployments:\n      - {name: X, "
       "request_timeout_s: 1e300}\n",
       "request_timeout_s"},
  };
  for (const auto& [text, expect] : bad_configs) {
    auto r = admin_->Call("PUT", "/api/serve/applications",
                          serve::DumpJson({{"config", text}, {"file", "bad.yaml"}}));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find(expect), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("bad.yaml:"), std::string::npos) << r.status();
  }
  // Bytes that are not UTF-8 cannot be in a JSON string: a body that has
  // them anyway (raw, not escaped) is refused as it is read.
  std::string raw =
      "{\"file\": \"bad.yaml\", \"config\": \"applications:\\n  - {name: t, code: x.so, "
      "deployments: [{name: X, user_config: {k: \xff\xfe}}]}\\n\"}";
  auto not_utf8 = Admin("PUT", "/api/serve/applications", raw, Authorized());
  ASSERT_TRUE(not_utf8.ok()) << not_utf8.status();
  EXPECT_EQ(not_utf8->status, 400) << not_utf8->body;
  EXPECT_TRUE(Json::accept(not_utf8->body)) << not_utf8->body;

  // Through all of it: no failed request, every node alive, the app as it was.
  int at_end = load.ok;
  ASSERT_TRUE(WaitUntil([&] { return load.ok > at_end + 50; }));
  load.Stop();
  EXPECT_EQ(load.failed, 0) << load.last_error;
  EXPECT_EQ(AliveNodes(), nodes);
  EXPECT_EQ(Replicas(), replicas_before) << "the same replicas serve: none died or was replaced";
  EXPECT_EQ(ServeRestarts(), restarts_before) << "no serve actor died or restarted";
}

}  // namespace
}  // namespace lumen
