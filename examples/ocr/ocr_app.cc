// The OCR-style example application (serve.yaml beside it runs it).
//   POST /ocr  {"image": "some words to read"}  ->  {"text": "SOME WORDS TO READ", ...}
// Detector splits the "image" into word boxes (scored; boxes under the
// user_config threshold are dropped), Recognize reads one box, Pipeline
// calls Detector, then Recognize on every box at once, and joins them.
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

#include "lumen/serve.h"

using lumen::Json;
using lumen::serve::Request;
using lumen::serve::Response;

namespace {

void SleepFor(const Request& req, double extra_ms) {
  double ms = extra_ms;
  if (auto it = req.query.find("sleep_ms"); it != req.query.end())
    ms += std::atof(it->second.c_str());
  if (ms > 0)
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
}

}  // namespace

class Detector {
 public:
  static Detector* Create(const Json& init_args) {
    auto* d = new Detector();
    d->delay_ms_ = init_args.value("delay_ms", 0.0);
    return d;
  }
  void Reconfigure(const Json& user_config) {
    std::lock_guard<std::mutex> lock(mu_);
    threshold_ = user_config.value("threshold", threshold_);
  }
  Response Call(const Request& req) {
    auto body = req.JsonBody();
    if (!body.ok() || !body->contains("image") || !(*body)["image"].is_string()) {
      return Response::Error(400, "send {\"image\": \"text to read\"}");
    }
    SleepFor(req, delay_ms_);
    double threshold;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threshold = threshold_;
    }
    std::istringstream in((*body)["image"].get<std::string>());
    Json boxes = Json::array();
    int x = 0;
    for (std::string word; in >> word; x += static_cast<int>(word.size()) + 1) {
      double score = word.size() >= 2 ? 0.9 : 0.3;  // one-letter "words" look like noise
      if (score >= threshold) boxes.push_back({{"x", x}, {"word", word}, {"score", score}});
    }
    return Response::FromJson({{"boxes", boxes}, {"threshold", threshold}});
  }
  bool CheckHealth() { return true; }

 private:
  std::mutex mu_;
  double threshold_ = 0.5;
  double delay_ms_ = 0;
};
LUMEN_DEPLOYMENT(Detector);

class Recognize {
 public:
  static Recognize* Create(const Json&) { return new Recognize(); }
  Response Call(const Request& req) {
    auto body = req.JsonBody();
    if (!body.ok()) return Response::Error(400, std::string(body.status().message()));
    std::string word = body->value("word", "");
    for (auto& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return Response::FromJson({{"text", word}, {"replica_pid", getpid()}});
  }
};
LUMEN_DEPLOYMENT(Recognize);

class Pipeline {
 public:
  static Pipeline* Create(const Json&) { return new Pipeline(); }
  Response Call(const Request& req) {
    auto detected = detector_.Remote(req).get();
    if (!detected.ok())
      return Response::Error(502, "Detector: " + std::string(detected.status().message()));
    if (detected->status != 200) return *detected;
    Json boxes = Json::parse(detected->body)["boxes"];
    std::vector<std::future<absl::StatusOr<Response>>> reads;
    for (const auto& box : boxes) {
      Request r;
      r.method = "POST";
      r.body = Json{{"word", box["word"]}}.dump();
      reads.push_back(recognize_.Remote(std::move(r)));
    }
    std::string text;
    Response out;
    for (auto& f : reads) {
      auto r = f.get();
      if (!r.ok()) return Response::Error(502, "Recognize: " + std::string(r.status().message()));
      std::string word = Json::parse(r->body)["text"];
      text += (text.empty() ? "" : " ") + word;
      out.chunks.push_back(word + "\n");
    }
    if (req.path == "/stream") {  // one chunk per word
      out.headers["content-type"] = "text/plain";
      return out;
    }
    return Response::FromJson({{"text", text}, {"boxes", boxes.size()}});
  }

 private:
  lumen::serve::DeploymentHandle detector_ = lumen::serve::GetDeploymentHandle("Detector");
  lumen::serve::DeploymentHandle recognize_ = lumen::serve::GetDeploymentHandle("Recognize");
};
LUMEN_DEPLOYMENT(Pipeline);

// A no-op deployment: answers its body back. GET /pid tells which process
// answered; ?sleep_ms=N waits first; init_args {"delay_ms": N} always waits,
// and {"slow": [1, 3], "slow_factor": 3} makes replicas Echo#1 and Echo#3
// that many times slower (uneven machines); {"serial": true} runs one
// request at a time, the rest waiting (a replica with one core); /fail throws;
// /fail_with_body throws the body as the message.
class Echo {
 public:
  static Echo* Create(const Json& init_args) {
    auto* e = new Echo();
    e->delay_ms_ = init_args.value("delay_ms", 0.0);
    e->serial_ = init_args.value("serial", false);
    std::string id = lumen::serve::CurrentReplica().replica;
    int index = std::atoi(id.substr(id.find('#') + 1).c_str());
    for (const auto& slow : init_args.value("slow", Json::array())) {
      if (slow.get<int>() == index) e->delay_ms_ *= init_args.value("slow_factor", 3.0);
    }
    return e;
  }
  Response Call(const Request& req) {
    if (req.path == "/fail") throw std::runtime_error("asked to fail");
    if (req.path == "/fail_with_body") throw std::runtime_error(req.body);  // any bytes
    if (serial_) {
      std::lock_guard<std::mutex> lock(mu_);
      SleepFor(req, delay_ms_);
    } else {
      SleepFor(req, delay_ms_);
    }
    if (req.path == "/pid") return Response::FromJson({{"pid", getpid()}});
    Response r;
    r.body = req.body;
    return r;
  }

 private:
  double delay_ms_ = 0;
  bool serial_ = false;
  std::mutex mu_;
};
LUMEN_DEPLOYMENT(Echo);

// Batching: with `batching` set, requests that arrive together reach
// CallBatch as one batch; each answer says how big its batch was.
class Batcher {
 public:
  static Batcher* Create(const Json&) { return new Batcher(); }
  Response Call(const Request& req) { return CallBatch({req})[0]; }
  std::vector<Response> CallBatch(const std::vector<Request>& requests) {
    std::vector<Response> out;
    for (size_t i = 0; i < requests.size(); ++i) {
      out.push_back(
          Response::FromJson({{"batch_size", requests.size()}, {"body", requests[i].body}}));
    }
    return out;
  }
};
LUMEN_DEPLOYMENT(Batcher);
