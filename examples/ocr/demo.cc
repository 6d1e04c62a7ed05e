// The README's demo: starts `lumen serve run examples/ocr/serve.yaml` (a
// private local cluster with the OCR application), renders a few images of
// known text with OpenCV, sends them to http://127.0.0.1:8000/ocr and prints
// what was read, how close it is (character error rate) and how fast, then
// stops serve and its cluster.
//
//   ocr_demo [--config examples/ocr/serve.yaml] [--port 8000] [--seconds 5]
//
// --port other than the config's 8000 (0: a free one) runs a copy of the
// config with that port.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

struct Answer {
  int status = 0;
  std::string body;
};

Answer Post(int port, const std::string& path, const std::string& body) {
  try {
    boost::asio::io_context io;
    boost::beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(60));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                  static_cast<unsigned short>(port)));
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "image/png");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    return {static_cast<int>(res.result_int()), res.body()};
  } catch (const std::exception& e) {
    return {0, e.what()};
  }
}

// Black text on white, one line per entry, as PNG.
std::string Render(const std::vector<std::string>& lines) {
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

double Cer(const std::string& truth, const std::string& got) {
  std::vector<size_t> prev(got.size() + 1), cur(got.size() + 1);
  for (size_t j = 0; j <= got.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= truth.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= got.size(); ++j) {
      cur[j] = std::min(
          {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (truth[i - 1] == got[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return truth.empty() ? 0 : static_cast<double>(prev[got.size()]) / truth.size();
}

int FreePort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string Arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = Arg(argc, argv, "--config", "examples/ocr/serve.yaml");
  int port = std::stoi(Arg(argc, argv, "--port", "8000"));
  if (port != 8000) {
    if (port == 0) port = FreePort();
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find("port: 8000");
    if (at == std::string::npos) {
      std::cerr << "ocr_demo: " << config << " has no 'port: 8000' to change\n";
      return 2;
    }
    text.replace(at, 10, "port: " + std::to_string(port));
    config = "/tmp/lumen-ocr-demo-" + std::to_string(::getpid()) + ".yaml";
    std::ofstream(config) << text;
  }
  double seconds = std::stod(Arg(argc, argv, "--seconds", "5"));
  std::filesystem::path lumen =
      std::filesystem::read_symlink("/proc/self/exe").parent_path() / "lumen";
  std::string log = "/tmp/lumen-ocr-demo-" + std::to_string(::getpid()) + ".log";

  std::cout << "ocr_demo: starting `lumen serve run " << config << "` (log: " << log << ")\n";
  pid_t child = ::fork();
  if (child == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    ::execl(lumen.c_str(), "lumen", "serve", "run", config.c_str(), nullptr);
    std::perror("exec lumen");
    _exit(127);
  }
  auto stop = [&](int code) {
    ::kill(child, SIGINT);
    auto deadline = Clock::now() + std::chrono::seconds(25);
    int status = 0;
    while (::waitpid(child, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a child
    }
    return code;
  };

  // Ready when a blank image is answered (the app and the model are up).
  std::string blank = Render({});
  auto deadline = Clock::now() + std::chrono::seconds(180);
  Answer a;
  while (true) {
    a = Post(port, "/ocr", blank);
    if (a.status == 200) break;
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child || Clock::now() > deadline) {
      std::cerr << "ocr_demo: serve did not come up (last answer: " << a.status << " " << a.body
                << "); its log:\n";
      std::system(("tail -n 30 " + log).c_str());
      return stop(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a server
  }
  std::cout << "ocr_demo: serving on http://127.0.0.1:" << port << "/ocr\n\n";

  const std::vector<std::vector<std::string>> pages = {
      {"HELLO LUMEN"},
      {"Serving models", "on every node"},
      {"The quick brown fox", "jumps over 13 lazy dogs"},
      {"OCR 2026: boxes and text"},
  };
  double cer_sum = 0;
  for (const auto& lines : pages) {
    std::string png = Render(lines);
    auto t0 = Clock::now();
    a = Post(port, "/ocr", png);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (a.status != 200) {
      std::cerr << "ocr_demo: HTTP " << a.status << ": " << a.body << "\n";
      return stop(1);
    }
    auto j = nlohmann::json::parse(a.body);
    std::string truth;
    for (const auto& l : lines) truth += (truth.empty() ? "" : "\n") + l;
    std::string text = j["text"].get<std::string>();
    double cer = Cer(truth, text);
    cer_sum += cer;
    std::printf("  %zu boxes, %6.1f ms, CER %.2f  read: %s\n", j["boxes"].size(), ms, cer,
                nlohmann::json(text).dump().c_str());
  }
  std::printf("\n  mean character error rate: %.3f\n", cer_sum / pages.size());

  // Throughput: 8 clients for a few seconds.
  std::string png = Render(pages[2]);
  std::atomic<int> done{0}, failed{0};
  auto until = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      while (Clock::now() < until) (Post(port, "/ocr", png).status == 200 ? done : failed)++;
    });
  }
  for (auto& t : clients) t.join();
  std::printf("  throughput: %.1f images/s (8 clients, %.0f s, %d failed)\n\n", done / seconds,
              seconds, failed.load());
  std::cout << "ocr_demo: stopping serve\n";
  return stop(failed == 0 ? 0 : 1);
}
