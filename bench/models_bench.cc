// The model layer against its limit and against a Python server, in one run
// (release build; python3-torch and python3-aiohttp from
// scripts/setup.sh --bench):
//  1. the limit: a TorchScript MLP (--in 64 -> --hidden 256 -> ReLU ->
//     --out 16 by default, FP32) run in
//     this process with torch::jit::load, one row per forward, from 1, 8 and
//     32 threads (and one forward of 32 rows: what batching can reach);
//  2. lumen: `lumen serve run` (the binary next to this one) on a generated
//     config serving the same module twice, `mlp` (no batching) and
//     `mlp_batched` (dynamic_batching), one replica each; closed-loop
//     clients POST one row to /v2/models/NAME/infer over keep-alive
//     connections (one per client) at each concurrency, as KServe v2 JSON
//     and with the binary tensor extension;
//  3. the peer: bench/models_peer.py (aiohttp + torch, what a team without a
//     serving system writes), driven the same way;
//  4. OCR: images/s through examples/ocr (the real application) with 1 and 2
//     recognizer replicas.
// For the breakdown, the same run also measures this client against a C++
// HTTP server that does no work (bench/http_backend: the floor), a no-op
// deployment behind lumen's proxy (Echo, from examples/ocr's ocr_app), the
// forward handed to a 64-thread pool in process (as a replica's serving
// threads run it), and reads the engine's time and batch sizes from lumen's
// /metrics. Prints one table, the ratios and the goals (lumen adds < 0.3 ms
// at p50 over in-process, >= 2x from batching at 32 clients, >= 3x the
// Python server's throughput).
// Every child (lumen, the Python server) is stopped on the way out: SIGINT,
// then SIGKILL after a deadline, on failure and on Ctrl-C too.
//
//   models_bench [--duration-s 5] [--concurrency 1,8,32] [--skip-python]
//                [--skip-ocr] [--skip-binary] [--python-workers 1]
//                [--in 64] [--hidden 256] [--out 16]
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <torch/script.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <semaphore>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "models/engines/testmodels/test_models.h"
#include "nlohmann/json.hpp"
#ifdef LUMEN_BENCH_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The MLP's shape (--in, --hidden, --out).
int kIn = 64;
int kHidden = 256;
int kOut = 16;
constexpr int kMaxBatch = 32;

// ---------------------------------------------------------------------------
// Children: started in their own process group (a Ctrl-C here reaches them
// once, through Stop), told to stop when this process dies
// (PR_SET_PDEATHSIG), and stopped with SIGINT, then SIGKILL.

constexpr int kMaxChildren = 16;
std::atomic<pid_t> g_children[kMaxChildren];

void Forget(pid_t pid) {
  for (auto& c : g_children) {
    pid_t p = pid;
    c.compare_exchange_strong(p, 0);
  }
}

// SIGINT, up to `grace_ms` for it to exit, then SIGKILL to its group.
// Async-signal-safe (kill, waitpid, nanosleep), so the signal handler uses it.
void StopPid(pid_t pid, int grace_ms) {
  if (pid <= 0) return;
  ::kill(pid, SIGINT);
  int status = 0;
  for (int waited = 0; waited < grace_ms; waited += 50) {
    if (::waitpid(pid, &status, WNOHANG) != 0) {
      ::kill(-pid, SIGKILL);  // what it left in its group (Python workers)
      return;
    }
    timespec ts{0, 50'000'000};
    ::nanosleep(&ts, nullptr);
  }
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

void StopAllChildren() {
  for (auto& c : g_children) StopPid(c.exchange(0), 25'000);
}

extern "C" void OnSignal(int sig) {
  static const char kMsg[] = "\nmodels_bench: stopping the servers it started\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  StopAllChildren();
  ::_exit(128 + sig);
}

class Child {
 public:
  // argv[0] is the executable's path; stdout and stderr go to `log`.
  Child(std::string name, std::vector<std::string> argv, const std::string& log,
        const std::string& cwd = "")
      : name_(std::move(name)), log_(log) {
    // Everything the child needs is made before fork(): after it, the child
    // of a threaded process may only make async-signal-safe calls.
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGINT);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
      ::execv(args[0], args.data());
      _exit(127);
    }
    if (pid_ > 0) {
      ::setpgid(pid_, pid_);
      for (auto& c : g_children) {
        pid_t empty = 0;
        if (c.compare_exchange_strong(empty, pid_)) break;
      }
    }
  }
  ~Child() { Stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      Forget(pid_);
      pid_ = -1;
      return false;
    }
    return true;
  }
  void Stop() {
    if (pid_ <= 0) return;
    Forget(pid_);
    StopPid(pid_, 25'000);
    pid_ = -1;
  }
  // The last lines of its log, for a failure's message.
  std::string Tail(int lines = 25) const {
    std::ifstream in(log_);
    std::vector<std::string> all;
    for (std::string l; std::getline(in, l);) all.push_back(l);
    std::string out;
    for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
         i < all.size(); ++i) {
      out += "    " + all[i] + "\n";
    }
    return name_ + "'s log (" + log_ + "):\n" + out;
  }

 private:
  std::string name_;
  std::string log_;
  pid_t pid_ = -1;
};

int FreePort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// ---------------------------------------------------------------------------
// The client: one keep-alive connection, one request at a time (Beast).

struct Request {
  http::verb verb = http::verb::post;
  std::string target;
  std::string body;
  std::string content_type = "application/json";
  std::string header_length;  // Inference-Header-Content-Length, when binary
};

struct Answer {
  int status = 0;  // 0: no answer (the message says why)
  std::string body;
  std::string header_length;
};

class Connection {
 public:
  explicit Connection(int port) : port_(port), stream_(io_) {}

  // Connects now rather than on the first Send (which then times only
  // the request); false when the server is not there.
  bool Connect() {
    try {
      if (!connected_) {
        stream_.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                       static_cast<unsigned short>(port_)));
        auto& s = stream_.socket();
        s.set_option(boost::asio::ip::tcp::no_delay(true));
        timeval tv{30, 0};  // sync reads and writes have no Beast timeout
        ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        connected_ = true;
      }
    } catch (const std::exception&) {
      Close();
    }
    return connected_;
  }

  Answer Send(const Request& r) {
    Answer a;
    if (!Connect()) {
      a.body = "cannot connect to 127.0.0.1:" + std::to_string(port_);
      return a;
    }
    try {
      http::request<http::string_body> req{r.verb, r.target, 11};
      req.set(http::field::host, "127.0.0.1");
      if (r.verb == http::verb::post) {
        req.set(http::field::content_type, r.content_type);
        if (!r.header_length.empty()) req.set("Inference-Header-Content-Length", r.header_length);
        req.body() = r.body;
        req.prepare_payload();
      }
      http::write(stream_, req);
      http::response<http::string_body> res;
      http::read(stream_, buffer_, res);
      a.status = static_cast<int>(res.result_int());
      a.body = std::move(res.body());
      if (auto it = res.find("Inference-Header-Content-Length"); it != res.end()) {
        a.header_length = std::string(it->value());
      }
      if (!res.keep_alive()) Close();
    } catch (const std::exception& e) {
      Close();
      a.status = 0;
      a.body = e.what();
    }
    return a;
  }

 private:
  void Close() {
    boost::system::error_code ec;
    stream_.socket().close(ec);
    buffer_.clear();
    connected_ = false;
  }

  int port_;
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
};

Answer Get(int port, const std::string& target) {
  Connection c(port);
  return c.Send({.verb = http::verb::get, .target = target});
}

// ---------------------------------------------------------------------------
// Closed-loop load: `concurrency` threads, each with its own session (a
// connection, or the module in process), sending the next request as soon as
// the last is answered, for `seconds`.

struct Load {
  double rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t ok = 0;
  int64_t failed = 0;
  std::string error;  // the last failure
  // From lumen's /metrics, over the run: the mean batch the model ran, and
  // the model's compute time per batch.
  double mean_batch = 0;
  double compute_ms = 0;
  double queue_ms = 0;
};

// One request: true when answered well, else false with *error set.
using Once = std::function<bool(std::string* error)>;

Load Drive(const std::function<Once()>& session, int concurrency, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::vector<int64_t>> latencies(concurrency);
  std::vector<int64_t> failed(concurrency, 0);
  std::vector<std::string> errors(concurrency);
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&, i] {
      Once once = session();
      latencies[i].reserve(1 << 16);
      ready++;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = Clock::now();
        if (once(&errors[i])) {
          latencies[i].push_back(std::chrono::nanoseconds(Clock::now() - t0).count());
        } else {
          failed[i]++;
        }
      }
    });
  }
  while (ready.load() < concurrency) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto start = Clock::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Load r;
  std::vector<int64_t> all;
  for (int i = 0; i < concurrency; ++i) {
    all.insert(all.end(), latencies[i].begin(), latencies[i].end());
    r.failed += failed[i];
    if (failed[i] > 0) r.error = errors[i];
  }
  r.ok = static_cast<int64_t>(all.size());
  r.rps = r.ok / elapsed;
  if (!all.empty()) {
    auto at = [&](double q) {
      size_t k = std::min(all.size() - 1, static_cast<size_t>(q * all.size()));
      std::nth_element(all.begin(), all.begin() + k, all.end());
      return all[k] / 1e6;
    };
    r.p50_ms = at(0.50);
    r.p99_ms = at(0.99);
  }
  return r;
}

// A session for HTTP: its own connection; `check` judges a 200's answer.
std::function<Once()> HttpSession(int port, const Request& request,
                                  std::function<bool(const Answer&)> check = nullptr) {
  auto req = std::make_shared<const Request>(request);
  return [port, req, check]() -> Once {
    auto conn = std::make_shared<Connection>(port);
    conn->Connect();
    return [conn, req, check](std::string* error) {
      Answer a = conn->Send(*req);
      if (a.status == 200 && (!check || check(a))) return true;
      *error = std::to_string(a.status) + " " + a.body.substr(0, 300);
      return false;
    };
  };
}

// ---------------------------------------------------------------------------
// The model: random weights from a fixed seed, and requests for one row.

std::vector<float> Random(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// The MLP, in -> hidden (ReLU) -> out, written by the engines' test library
// (WriteTorchMlp: TorchScript compiled by libtorch); weights uniform in
// +-1/sqrt(fan-in) from fixed seeds.
absl::Status WriteMlp(const std::string& path) {
  float s1 = 1.0f / std::sqrt(static_cast<float>(kIn));
  float s2 = 1.0f / std::sqrt(static_cast<float>(kHidden));
  return lumen::models::testing::WriteTorchMlp(
      path, Random(kIn * kHidden, 1, s1), Random(kHidden, 2, s1), Random(kHidden * kOut, 3, s2),
      Random(kOut, 4, s2), kIn, kHidden, kOut);
}

std::string ConfigPbtxt(const std::string& name, bool batched) {
  std::string c = "name: \"" + name +
                  "\"\n"
                  "platform: \"pytorch_libtorch\"\n"
                  "max_batch_size: " +
                  std::to_string(kMaxBatch) +
                  "\n"
                  "input [ { name: \"INPUT__0\" data_type: TYPE_FP32 dims: [ " +
                  std::to_string(kIn) +
                  " ] } ]\n"
                  "output [ { name: \"OUTPUT__0\" data_type: TYPE_FP32 dims: [ " +
                  std::to_string(kOut) +
                  " ] } ]\n"
                  "parameters { key: \"threads\" value { string_value: \"1\" } }\n";
  if (batched) c += "dynamic_batching { max_queue_delay_microseconds: 1000 }\n";
  return c;
}

std::string JsonBody(const std::vector<float>& row) {
  return Json(
             {{"inputs",
               {{{"name", "INPUT__0"}, {"datatype", "FP32"}, {"shape", {1, kIn}}, {"data", row}}}}})
      .dump();
}

// The binary tensor extension both ways: *header_length is the JSON part's.
std::string BinaryBody(const std::vector<float>& row, std::string* header_length) {
  std::string header =
      Json({{"inputs",
             {{{"name", "INPUT__0"},
               {"datatype", "FP32"},
               {"shape", {1, kIn}},
               {"parameters", {{"binary_data_size", kIn * sizeof(float)}}}}}},
            {"outputs", {{{"name", "OUTPUT__0"}, {"parameters", {{"binary_data", true}}}}}}})
          .dump();
  *header_length = std::to_string(header.size());
  return header + std::string(reinterpret_cast<const char*>(row.data()), kIn * sizeof(float));
}

// The output of an answer (JSON or binary), or empty.
std::vector<float> Output(const Answer& a) {
  std::vector<float> y;
  if (!a.header_length.empty()) {
    size_t n = std::stoul(a.header_length);
    if (a.body.size() != n + kOut * sizeof(float)) return y;
    y.resize(kOut);
    std::memcpy(y.data(), a.body.data() + n, kOut * sizeof(float));
    return y;
  }
  Json j = Json::parse(a.body, nullptr, false);
  if (!j.is_object() || !j.contains("outputs")) return y;
  for (const auto& v : j["outputs"][0]["data"]) y.push_back(v.get<float>());
  return y;
}

bool Close(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i] - b[i]) > 1e-4f * (1 + std::fabs(b[i]))) return false;
  }
  return true;
}

// In process: what the torchscript engine does per request (copy in,
// forward under InferenceMode, copy out), with nothing around it.
std::function<Once()> InProcessSession(torch::jit::Module* module, const std::vector<float>& row,
                                       int rows) {
  return [module, &row, rows]() -> Once {
    auto input = std::make_shared<std::vector<float>>();
    for (int r = 0; r < rows; ++r) input->insert(input->end(), row.begin(), row.end());
    return [module, input, rows](std::string* error) {
      c10::InferenceMode guard;
      torch::Tensor x = torch::empty({rows, kIn}, torch::kFloat32);
      std::memcpy(x.data_ptr(), input->data(), input->size() * sizeof(float));
      std::vector<torch::jit::IValue> args{x};
      torch::Tensor y = module->forward(std::move(args)).toTensor().contiguous();
      std::vector<float> out(y.numel());
      std::memcpy(out.data(), y.data_ptr(), out.size() * sizeof(float));
      return out.size() == static_cast<size_t>(rows) * kOut;
    };
  };
}

// Threads that each take a job in turn, the longest idle first: how a
// replica's serving pool (max_ongoing_requests threads waiting on an
// absl::Mutex, whose waiters wake in FIFO order) runs requests that arrive
// one at a time. For one caller at a time.
class RoundRobinPool {
 public:
  explicit RoundRobinPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      workers_.push_back(std::make_unique<Worker>());
      Worker* w = workers_.back().get();
      w->thread = std::thread([w] {
        for (;;) {
          w->go.acquire();
          if (w->job == nullptr) return;
          std::binary_semaphore* done = w->done;
          (*w->job)();
          done->release();
        }
      });
    }
  }
  ~RoundRobinPool() {
    for (auto& w : workers_) {
      w->job = nullptr;
      w->go.release();
      w->thread.join();
    }
  }
  RoundRobinPool(const RoundRobinPool&) = delete;
  RoundRobinPool& operator=(const RoundRobinPool&) = delete;

  // Runs `fn` on the next thread and waits for it.
  void Run(const std::function<void()>& fn) {
    Worker* w = workers_[next_++ % workers_.size()].get();
    std::binary_semaphore done{0};
    w->job = &fn;
    w->done = &done;
    w->go.release();
    done.acquire();
  }

 private:
  struct Worker {
    std::binary_semaphore go{0};
    const std::function<void()>* job = nullptr;
    std::binary_semaphore* done = nullptr;
    std::thread thread;
  };
  std::vector<std::unique_ptr<Worker>> workers_;
  size_t next_ = 0;
};

// ---------------------------------------------------------------------------
// lumen's /metrics: per model, summed over replicas.

std::map<std::string, double> ModelMetrics(int port) {
  std::map<std::string, double> m;
  Answer a = Get(port, "/metrics");
  if (a.status != 200) return m;
  std::istringstream in(a.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("lumen_model_", 0) != 0 || line.find("le=\"") != std::string::npos) continue;
    size_t brace = line.find('{'), close = line.rfind('}');
    if (brace == std::string::npos || close == std::string::npos) continue;
    std::string labels = line.substr(brace, close - brace);
    std::string key = line.substr(0, brace);
    for (const char* label : {"model=\"", "deployment=\""}) {
      size_t at = labels.find(label);
      if (at != std::string::npos) {
        at += std::strlen(label);
        key += "/" + labels.substr(at, labels.find('"', at) - at);
        break;
      }
    }
    try {
      double v = std::stod(line.substr(close + 1));
      if (key.rfind("lumen_model_loaded", 0) == 0) {
        m[key] += v > 0 ? 1 : 0;  // replicas with the model loaded
      } else {
        m[key] += v;
      }
    } catch (const std::exception&) {
    }
  }
  return m;
}

// Fills mean_batch and compute_ms from two /metrics scrapes.
void BatchFigures(const std::map<std::string, double>& before,
                  const std::map<std::string, double>& after, const std::string& model, Load* r) {
  auto delta = [&](const std::string& name) {
    std::string key = name + "/" + model;
    double b = before.count(key) ? before.at(key) : 0;
    double a = after.count(key) ? after.at(key) : 0;
    return a - b;
  };
  double batches = delta("lumen_model_batch_size_count");
  if (batches > 0) {
    r->mean_batch = delta("lumen_model_batch_size_sum") / batches;
    r->compute_ms = 1000 * delta("lumen_model_compute_seconds_sum") / batches;
    r->queue_ms = 1000 * delta("lumen_model_queue_seconds_sum") / batches;
  }
}

// ---------------------------------------------------------------------------
// Output.

std::string Fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string Rate(double v) {
  if (v <= 0) return "-";
  return Fixed(v, v >= 100 ? 0 : 1);
}

std::string Ms(double v) { return v > 0 ? Fixed(v, 3) : "-"; }

struct Row {
  std::string name;
  std::map<int, Load> at;  // by concurrency
};

void PrintTable(const std::vector<Row>& rows, const std::vector<int>& levels) {
  int lo = levels.front(), hi = levels.back();
  std::ostringstream h;
  h << std::left << std::setw(34) << "target" << std::right << std::setw(9)
    << ("p50@" + std::to_string(lo)) << std::setw(9) << ("p99@" + std::to_string(lo));
  for (int c : levels) h << std::setw(10) << ("req/s@" + std::to_string(c));
  h << std::setw(9) << ("p50@" + std::to_string(hi)) << std::setw(9)
    << ("p99@" + std::to_string(hi)) << std::setw(9) << ("batch@" + std::to_string(hi))
    << std::setw(9) << "fail";
  std::cout << h.str() << "\n" << std::string(h.str().size(), '-') << "\n";
  for (const Row& r : rows) {
    auto get = [&](int c) { return r.at.count(c) ? r.at.at(c) : Load{}; };
    int64_t failed = 0;
    for (const auto& [c, l] : r.at) failed += l.failed;
    std::cout << std::left << std::setw(34) << r.name << std::right << std::setw(9)
              << Ms(get(lo).p50_ms) << std::setw(9) << Ms(get(lo).p99_ms);
    for (int c : levels) std::cout << std::setw(10) << Rate(get(c).rps);
    std::cout << std::setw(9) << Ms(get(hi).p50_ms) << std::setw(9) << Ms(get(hi).p99_ms)
              << std::setw(9) << (get(hi).mean_batch > 0 ? Fixed(get(hi).mean_batch, 1) : "-")
              << std::setw(9) << failed << "\n";
  }
}

std::string Ratio(double a, double b) { return a > 0 && b > 0 ? Fixed(a / b, 2) : "-"; }

#ifdef LUMEN_BENCH_HAVE_OPENCV
// Black text on white, one line per entry, as PNG: examples/ocr/demo.cc's.
std::string RenderPage(const std::vector<std::string>& lines) {
  int h = 70 * static_cast<int>(lines.size()) + 40;
  cv::Mat img(h, 900, CV_8UC1, cv::Scalar(255));
  for (size_t i = 0; i < lines.size(); ++i) {
    cv::putText(img, lines[i], cv::Point(30, 70 + 70 * static_cast<int>(i)),
                cv::FONT_HERSHEY_DUPLEX, 1.4, cv::Scalar(0), 2, cv::LINE_AA);
  }
  std::vector<uchar> png;
  cv::imencode(".png", img, png);
  return std::string(png.begin(), png.end());
}
#endif

// Polls until `ready` or the child exits or `timeout_s` passes.
bool WaitFor(Child& child, const std::function<bool()>& ready, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    if (ready()) return true;
    if (!child.Alive()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a server
  }
  return false;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool Replace(std::string* text, const std::string& from, const std::string& to) {
  size_t at = text->find(from);
  if (at == std::string::npos) return false;
  text->replace(at, from.size(), to);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("lumen's model layer against in-process libtorch and a Python server");
  double duration = 5, warmup = 1;
  std::vector<int> levels = {1, 8, 32};
  int ocr_clients = 8, python_workers = 1;
  std::string python = "/usr/bin/python3", python_executor = "loop";
  std::string source_dir = LUMEN_SOURCE_DIR;
  bool skip_python = false, skip_ocr = false, skip_binary = false, keep = false;
  cli.add_option("--duration-s", duration, "seconds per measurement");
  cli.add_option("--warmup-s", warmup, "seconds of load before each target's first run");
  cli.add_option("--concurrency", levels, "client threads, e.g. 1,8,32")->delimiter(',');
  cli.add_option("--ocr-clients", ocr_clients);
  cli.add_option("--python", python, "a Python with torch and aiohttp");
  cli.add_option("--python-workers", python_workers, "processes of the Python server");
  cli.add_option("--python-executor", python_executor, "loop or thread (models_peer.py)");
  cli.add_option("--source-dir", source_dir, "the repository (examples/ocr, bench/)");
  cli.add_flag("--skip-python", skip_python);
  cli.add_flag("--skip-ocr", skip_ocr);
  cli.add_flag("--skip-binary", skip_binary);
  cli.add_flag("--keep", keep, "keep the temporary directory (configs, logs)");
  cli.add_option("--in", kIn, "the MLP's inputs")->check(CLI::Range(1, 1 << 16));
  cli.add_option("--hidden", kHidden, "the MLP's hidden units")->check(CLI::Range(1, 1 << 16));
  cli.add_option("--out", kOut, "the MLP's outputs")->check(CLI::Range(1, 1 << 16));
  CLI11_PARSE(cli, argc, argv);
  std::cout << std::unitbuf;  // progress shows as it happens, into a file too
  std::sort(levels.begin(), levels.end());
  if (levels.empty() || levels.front() < 1) {
    std::cerr << "--concurrency: give counts >= 1\n";
    return 2;
  }

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
  std::atexit(StopAllChildren);

  const fs::path bin = fs::read_symlink("/proc/self/exe").parent_path();
  const std::string lumen = (bin / "lumen").string();
  // Configs, the model repository and the servers' logs.
  std::optional<lumen::models::testing::TempDir> temp;
  std::string dir;
  if (keep) {
    char tmpl[] = "/tmp/lumen_models_bench_XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) dir = tmpl;
    std::cout << "models_bench: keeping " << dir << " (configs, model, logs)\n";
  } else {
    temp.emplace();
    dir = temp->path();
  }
  if (dir.empty()) {
    std::cerr << "models_bench: cannot make a temporary directory\n";
    return 1;
  }

  // The repository: mlp and mlp_batched, the same model.pt.
  const std::string repo = dir + "/repo";
  fs::create_directories(repo + "/mlp/1");
  if (absl::Status s = WriteMlp(repo + "/mlp/1/model.pt"); !s.ok()) {
    std::cerr << "models_bench: cannot write the model: " << s << "\n";
    return 1;
  }
  std::ofstream(repo + "/mlp/config.pbtxt") << ConfigPbtxt("mlp", false);
  fs::create_directories(repo + "/mlp_batched/1");
  fs::copy_file(repo + "/mlp/1/model.pt", repo + "/mlp_batched/1/model.pt");
  std::ofstream(repo + "/mlp_batched/config.pbtxt") << ConfigPbtxt("mlp_batched", true);

  const std::vector<float> row = Random(kIn, 7, 1.0f);
  const std::string json_body = JsonBody(row);
  std::string binary_length;
  const std::string binary_body = BinaryBody(row, &binary_length);

  std::cout << "models_bench: MLP " << kIn << " -> " << kHidden << " -> " << kOut
            << " FP32 (TorchScript), one row per request; " << duration
            << " s per run; closed-loop clients, one keep-alive connection each; "
            << std::thread::hardware_concurrency() << " CPUs\n\n";

  std::vector<Row> rows;
  int status = 0;

  // 1. The limit.
  at::set_num_threads(1);
  torch::jit::Module module = torch::jit::load(repo + "/mlp/1/model.pt");
  module.eval();
  std::vector<float> expected;
  {
    c10::InferenceMode guard;
    for (int i = 0; i < 20; ++i) {  // the profiling executor optimizes after two runs
      (void)module.forward({torch::zeros({1, kIn})});
      (void)module.forward({torch::zeros({kMaxBatch, kIn})});
    }
    torch::Tensor x = torch::from_blob(const_cast<float*>(row.data()), {1, kIn}).clone();
    torch::Tensor y = module.forward({x}).toTensor().contiguous();
    expected.assign(y.data_ptr<float>(), y.data_ptr<float>() + kOut);
  }
  Row in_process{"in process (torch::jit, 1 row)", {}};
  for (int c : levels) in_process.at[c] = Drive(InProcessSession(&module, row, 1), c, duration);
  rows.push_back(in_process);
  Row in_batch{"in process, 32 rows/forward (rows/s)", {}};
  {
    Load l = Drive(InProcessSession(&module, row, kMaxBatch), 1, duration);
    l.rps *= kMaxBatch;
    in_batch.at[levels.front()] = l;
  }
  rows.push_back(in_batch);
  // The same forward handed to a pool of max_ongoing_requests (64) threads
  // in turn, as a replica runs it: the cost of the hand-off and of a thread
  // that last ran 64 requests ago.
  Row in_pool{"in process, via a 64-thread pool", {}};
  {
    RoundRobinPool pool(64);
    auto session = [&]() -> Once {
      auto once = std::make_shared<Once>(InProcessSession(&module, row, 1)());
      return [&pool, once](std::string* error) {
        bool ok = false;
        pool.Run([&] { ok = (*once)(error); });
        return ok;
      };
    };
    in_pool.at[levels.front()] = Drive(session, 1, duration);
  }
  rows.push_back(in_pool);
  std::cout << "in process: done\n";

  // The HTTP floor: this client against a Beast server (lumen's own
  // HttpServer, one thread) that answers with the body at once.
  Row floor{"C++ HTTP server, no work (floor)", {}};
  {
    int port = FreePort();
    Child backend("http_backend", {(bin / "http_backend").string(), std::to_string(port)},
                  dir + "/http_backend.log");
    Request req{.target = "/", .body = json_body};
    if (!WaitFor(
            backend, [&] { return Connection(port).Send(req).status == 200; }, 30)) {
      std::cerr << "models_bench: http_backend did not come up\n" << backend.Tail();
      return 1;
    }
    (void)Drive(HttpSession(port, req), 8, warmup);
    for (int c : levels) floor.at[c] = Drive(HttpSession(port, req), c, duration);
    rows.push_back(floor);
    backend.Stop();
  }
  std::cout << "HTTP floor: done\n";

  // 2. lumen.
  auto check_json = [&](const Answer& a) { return a.header_length.empty(); };
  std::map<std::string, Row> lumen_rows;
  double lumen_startup_s = 0;
  {
    int port = FreePort();
    std::ofstream(dir + "/serve.yaml")
        << "http: {host: 127.0.0.1, port: " << port << "}\n"
        << "applications:\n  - name: ml\n    models:\n      - repository: " << repo
        << "\n        num_replicas: 1\n        resources: {CPU: 1}\n"
        << "        max_ongoing_requests: 64\n"
        // A no-op deployment beside the models (CPU 0: the models take the
        // node's two): the serving path alone, for the breakdown.
        << "  - name: noop\n    route_prefix: /noop\n    code: " << LUMEN_OCR_APP
        << "\n    ingress: Echo\n    deployments:\n"
        << "      - {name: Echo, num_replicas: 1, resources: {CPU: 0}, "
           "max_ongoing_requests: 64}\n";
    auto t0 = Clock::now();
    Child server("lumen serve run", {lumen, "serve", "run", dir + "/serve.yaml"},
                 dir + "/lumen.log", source_dir);
    bool up = WaitFor(
        server,
        [&] {
          return Get(port, "/v2/models/mlp/ready").status == 200 &&
                 Get(port, "/v2/models/mlp_batched/ready").status == 200 &&
                 Connection(port).Send({.target = "/noop", .body = json_body}).status == 200;
        },
        180);
    lumen_startup_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!up) {
      std::cerr << "models_bench: lumen did not serve the models within 180 s\n" << server.Tail();
      return 1;
    }
    // Answers are checked against the module run here, once per variant.
    for (const std::string model : {"mlp", "mlp_batched"}) {
      Connection c(port);
      for (bool binary : {false, true}) {
        Answer a = c.Send({.target = "/v2/models/" + model + "/infer",
                           .body = binary ? binary_body : json_body,
                           .content_type = binary ? "application/octet-stream" : "application/json",
                           .header_length = binary ? binary_length : ""});
        if (a.status != 200 || !Close(Output(a), expected)) {
          std::cerr << "models_bench: " << model << (binary ? " (binary)" : "")
                    << " answered wrongly: " << a.status << " " << a.body.substr(0, 500) << "\n";
          status = 1;
        }
      }
    }
    std::cout << "lumen: serving after " << Fixed(lumen_startup_s, 1) << " s\n";
    {
      Request req{.target = "/noop", .body = json_body};
      Row r{"lumen no-op deployment (Echo)", {}};
      (void)Drive(HttpSession(port, req), 8, warmup);
      for (int c : levels) r.at[c] = Drive(HttpSession(port, req), c, duration);
      lumen_rows[r.name] = r;
      rows.push_back(r);
      std::cout << r.name << ": done\n";
    }
    for (bool binary : {false, true}) {
      if (binary && skip_binary) continue;
      for (const std::string model : {"mlp", "mlp_batched"}) {
        Request req{.target = "/v2/models/" + model + "/infer",
                    .body = binary ? binary_body : json_body,
                    .content_type = binary ? "application/octet-stream" : "application/json",
                    .header_length = binary ? binary_length : ""};
        std::function<bool(const Answer&)> check;
        if (!binary) check = check_json;
        Row r{"lumen " + model + (binary ? " (binary)" : " (JSON)"), {}};
        (void)Drive(HttpSession(port, req, check), 8, warmup);
        for (int c : levels) {
          // Replicas publish their metrics every 2 s: a scrape after a
          // period without load covers the run before it exactly.
          std::this_thread::sleep_for(std::chrono::milliseconds(2500));
          std::map<std::string, double> before = ModelMetrics(port);
          r.at[c] = Drive(HttpSession(port, req, check), c, duration);
          std::this_thread::sleep_for(std::chrono::milliseconds(2500));
          BatchFigures(before, ModelMetrics(port), model, &r.at[c]);
          if (r.at[c].failed > 0) {
            std::cerr << r.name << " c=" << c << ": " << r.at[c].failed << " failed, e.g. "
                      << r.at[c].error << "\n";
          }
        }
        lumen_rows[r.name] = r;
        rows.push_back(r);
        std::cout << r.name << ": done\n";
      }
    }
    server.Stop();
  }

  // 3. The Python peer.
  std::optional<Row> peer;
  if (!skip_python) {
    int port = FreePort();
    Child server("models_peer.py",
                 {python, source_dir + "/bench/models_peer.py", "--model", repo + "/mlp/1/model.pt",
                  "--name", "mlp", "--port", std::to_string(port), "--workers",
                  std::to_string(python_workers), "--executor", python_executor, "--in-features",
                  std::to_string(kIn)},
                 dir + "/peer.log");
    if (!WaitFor(
            server, [&] { return Get(port, "/v2/models/mlp/ready").status == 200; }, 120)) {
      std::cerr << "models_bench: the Python server did not come up (" << python
                << " needs torch and aiohttp: scripts/setup.sh --bench)\n"
                << server.Tail();
      status = 1;
    } else {
      Request req{.target = "/v2/models/mlp/infer", .body = json_body};
      Answer a = Connection(port).Send(req);
      if (a.status != 200 || !Close(Output(a), expected)) {
        std::cerr << "models_bench: the Python server answered wrongly: " << a.status << " "
                  << a.body.substr(0, 500) << "\n";
        status = 1;
      }
      Row r{"Python aiohttp+torch (JSON)", {}};
      if (python_workers > 1) r.name = "Python, " + std::to_string(python_workers) + " workers";
      (void)Drive(HttpSession(port, req), 8, warmup);
      for (int c : levels) r.at[c] = Drive(HttpSession(port, req), c, duration);
      peer = r;
      rows.push_back(r);
      std::cout << r.name << ": done\n";
    }
    server.Stop();
  }

  // 4. OCR through examples/ocr.
  std::map<int, Load> ocr;
#ifdef LUMEN_BENCH_HAVE_OPENCV
  if (!skip_ocr) {
    std::string base = ReadFile(source_dir + "/examples/ocr/serve.yaml");
    const std::string png =
        RenderPage({"The quick brown fox", "jumps over 13 lazy dogs"});  // demo.cc's
    const std::string blank = RenderPage({});
    for (int replicas : {1, 2}) {
      std::string yaml = base;
      bool ok =
          Replace(&yaml, "./build/release/lib/libocr_vision.so", LUMEN_OCR_VISION) &&
          Replace(&yaml, "./examples/ocr/models", source_dir + "/examples/ocr/models") &&
          Replace(&yaml, "num_replicas: 2\n        resources: {CPU: 0.5}",
                  "num_replicas: " + std::to_string(replicas) + "\n        resources: {CPU: 0.5}");
      if (!ok) {
        std::cerr << "models_bench: examples/ocr/serve.yaml changed; cannot make its variants\n";
        status = 1;
        break;
      }
      std::string config = dir + "/ocr-" + std::to_string(replicas) + ".yaml";
      std::ofstream(config) << yaml;
      int port = FreePort();
      Child server("lumen serve run (OCR)",
                   {lumen, "serve", "run", config, "--http-port", std::to_string(port)},
                   dir + "/ocr-" + std::to_string(replicas) + ".log", source_dir);
      Request blank_req{.target = "/ocr", .body = blank, .content_type = "image/png"};
      bool up = WaitFor(
          server,
          [&] {
            if (Connection(port).Send(blank_req).status != 200) return false;
            auto m = ModelMetrics(port);
            return m["lumen_model_loaded/recognizer"] >= replicas;
          },
          240);
      if (!up) {
        std::cerr << "models_bench: OCR with " << replicas
                  << " recognizer replicas did not come up\n"
                  << server.Tail();
        status = 1;
        continue;
      }
      Request req{.target = "/ocr", .body = png, .content_type = "image/png"};
      auto check = [](const Answer& a) { return a.body.find("\"text\"") != std::string::npos; };
      (void)Drive(HttpSession(port, req, check), ocr_clients, std::max(3.0, warmup));
      ocr[replicas] = Drive(HttpSession(port, req, check), ocr_clients, duration);
      if (ocr[replicas].failed > 0) {
        std::cerr << "OCR: " << ocr[replicas].failed << " failed, e.g. " << ocr[replicas].error
                  << "\n";
      }
      std::cout << "OCR, " << replicas << " recognizer replica(s): done\n";
      server.Stop();
    }
  }
#else
  (void)skip_ocr;
  std::cout << "OCR: skipped (built without OpenCV)\n";
#endif

  // The table.
  std::cout << "\nlatency in ms; req/s@N: requests per second with N closed-loop clients; "
               "batch: mean rows per forward in lumen\n\n";
  PrintTable(rows, levels);
  if (!ocr.empty()) {
    std::cout << "\nOCR (examples/ocr, " << ocr_clients << " clients, demo.cc's two-line page)\n";
    for (const auto& [n, l] : ocr) {
      std::cout << "  " << n << " recognizer replica" << (n > 1 ? "s" : " ") << "  " << std::setw(7)
                << Rate(l.rps) << " images/s   p50 " << Ms(l.p50_ms) << " ms  p99 " << Ms(l.p99_ms)
                << " ms  failed " << l.failed << "\n";
    }
    if (ocr.count(1) && ocr.count(2)) {
      std::cout << "  2 / 1 replicas: " << Ratio(ocr[2].rps, ocr[1].rps) << "\n";
    }
  }

  int lo = levels.front(), hi = levels.back();
  auto load = [&](const std::string& name, int c) {
    return lumen_rows.count(name) && lumen_rows[name].at.count(c) ? lumen_rows[name].at[c] : Load{};
  };
  const Load base = in_process.at[lo];
  std::cout << "\nin process p50 " << Ms(base.p50_ms) << " ms; forward of 32 rows "
            << Rate(in_batch.at[lo].rps) << " rows/s\n";
  double added = load("lumen mlp (JSON)", lo).p50_ms - base.p50_ms;
  std::cout << "lumen p50 at c=" << lo << ": " << Ms(load("lumen mlp (JSON)", lo).p50_ms)
            << " ms (JSON), added " << Fixed(added, 3) << " ms";
  if (!skip_binary) {
    std::cout << "; binary " << Ms(load("lumen mlp (binary)", lo).p50_ms) << " ms, added "
              << Fixed(load("lumen mlp (binary)", lo).p50_ms - base.p50_ms, 3) << " ms";
  }
  std::cout << "\n";
  {
    const Load mlp = load("lumen mlp (JSON)", lo);
    const Load echo = load("lumen no-op deployment (Echo)", lo);
    std::cout << "p50 at c=" << lo << ", where it goes (ms):\n"
              << "  HTTP floor (this client, loopback, a Beast server)  "
              << Fixed(floor.at[lo].p50_ms, 3) << "\n"
              << "  lumen's serving path (Echo - floor)                 "
              << Fixed(echo.p50_ms - floor.at[lo].p50_ms, 3) << "\n"
              << "  the model layer (mlp JSON - Echo)                   "
              << Fixed(mlp.p50_ms - echo.p50_ms, 3) << "\n"
              << "    of which the engine's Run in the replica (mean)   "
              << Fixed(mlp.compute_ms, 3) << "\n"
              << "    the same forward in process (p50): direct " << Fixed(base.p50_ms, 3)
              << ", handed to a 64-thread pool " << Fixed(in_pool.at[lo].p50_ms, 3) << "\n";
  }
  double gain = load("lumen mlp_batched (JSON)", hi).rps / load("lumen mlp (JSON)", hi).rps;
  std::cout << "batching gain at c=" << hi << " (mlp_batched / mlp): JSON "
            << Ratio(load("lumen mlp_batched (JSON)", hi).rps, load("lumen mlp (JSON)", hi).rps);
  if (!skip_binary) {
    std::cout << ", binary "
              << Ratio(load("lumen mlp_batched (binary)", hi).rps,
                       load("lumen mlp (binary)", hi).rps);
  }
  std::cout << "\n";
  for (const std::string name : {"lumen mlp (JSON)", "lumen mlp_batched (JSON)"}) {
    for (int c : {lo, hi}) {
      const Load l = load(name, c);
      std::cout << "  " << name << " at c=" << c << ": mean batch " << Fixed(l.mean_batch, 1)
                << ", engine " << Fixed(l.compute_ms, 3) << " ms per batch ("
                << Fixed(l.mean_batch > 0 ? l.compute_ms / l.mean_batch : 0, 3)
                << " ms per row), queued " << Fixed(l.queue_ms, 3) << " ms (means)\n";
    }
  }
  double worst_ratio = 1e9;
  if (peer) {
    std::cout << "lumen / Python (JSON):";
    for (int c : levels) {
      double p = peer->at[c].rps;
      double best =
          std::max(load("lumen mlp (JSON)", c).rps, load("lumen mlp_batched (JSON)", c).rps);
      worst_ratio = std::min(worst_ratio, p > 0 ? best / p : 0);
      std::cout << "  c=" << c << " " << Ratio(load("lumen mlp (JSON)", c).rps, p) << " (batched "
                << Ratio(load("lumen mlp_batched (JSON)", c).rps, p) << ")";
    }
    std::cout << "\n";
  }
  auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
  std::cout << "\ngoals:\n"
            << "  lumen adds < 0.3 ms at p50, c=" << lo << " (JSON): " << Fixed(added, 3) << " ms, "
            << verdict(added < 0.3) << "\n"
            << "  batching >= 2x at c=" << hi << ": " << Fixed(gain, 2) << "x, "
            << verdict(gain >= 2) << "\n";
  if (peer) {
    double p = peer->at[hi].rps;
    double best =
        std::max(load("lumen mlp (JSON)", hi).rps, load("lumen mlp_batched (JSON)", hi).rps);
    std::cout << "  >= 3x the Python server's throughput at c=" << hi
              << " (best lumen model): " << Ratio(best, p) << "x, "
              << verdict(p > 0 && best / p >= 3) << "\n";
    std::cout << "    (at every concurrency, c=" << lo << " being one request at a time: worst "
              << Fixed(worst_ratio, 2) << "x)\n";
  }
  std::cout << "  (lumen started serving in " << Fixed(lumen_startup_s, 1) << " s)\n";

  return status;
}
