// The OCR example: a real one, as near-line AI platforms run it.
//
//   Reader (the ingress)  takes a PNG or JPEG upload, asks Detector where the
//                         text is, crops each region and sends them all to the
//                         recognizer model in one KServe v2 request; answers
//                         {"boxes": [{x, y, w, h, text}], "text": "..."}
//   Detector              finds text regions with OpenCV (binarize, join
//                         letters into lines, contours)
//   recognizer            a model from examples/ocr/models: the tesseract
//                         engine reads each crop (see serve.yaml)
#include <algorithm>
#include <cstring>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lumen/serve.h"

namespace {

using lumen::Json;
using lumen::serve::Request;
using lumen::serve::Response;

cv::Mat Decode(const std::string& bytes) {
  if (bytes.empty()) return {};
  std::vector<uchar> buf(bytes.begin(), bytes.end());
  try {
    return cv::imdecode(buf, cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception&) {
    return {};
  }
}

}  // namespace

// Text regions of an image: dark text on a light background, joined into
// lines by a wide closing, as boxes sorted top to bottom, left to right.
class Detector {
 public:
  static Detector* Create(const Json& args) {
    auto* d = new Detector;
    d->min_height_ = args.value("min_height", 8);
    return d;
  }

  Response Call(const Request& req) {
    cv::Mat gray = Decode(req.body);
    if (gray.empty()) {
      return Response::Error(400, "the body is not an image OpenCV can decode (send PNG or JPEG)");
    }
    cv::Mat bin;
    cv::threshold(gray, bin, 0, 255, cv::THRESH_BINARY_INV | cv::THRESH_OTSU);
    // Letters of one line touch after closing with a kernel wider than the
    // gaps between them (scaled to the image), lines stay apart.
    int kw = std::max(9, gray.cols / 40), kh = std::max(3, gray.rows / 200);
    cv::Mat joined;
    cv::morphologyEx(bin, joined, cv::MORPH_CLOSE,
                     cv::getStructuringElement(cv::MORPH_RECT, cv::Size(kw, kh)));
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(joined, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
    std::vector<cv::Rect> boxes;
    for (const auto& c : contours) {
      cv::Rect r = cv::boundingRect(c);
      if (r.height < min_height_ || r.width < min_height_) continue;  // specks
      int pad = std::max(4, r.height / 4);
      r = cv::Rect(r.x - pad, r.y - pad, r.width + 2 * pad, r.height + 2 * pad) &
          cv::Rect(0, 0, gray.cols, gray.rows);
      boxes.push_back(r);
    }
    std::sort(boxes.begin(), boxes.end(), [](const cv::Rect& a, const cv::Rect& b) {
      return a.y + a.height / 2 < b.y ? true : (b.y + b.height / 2 < a.y ? false : a.x < b.x);
    });
    Json out = Json::array();
    for (const auto& r : boxes)
      out.push_back({{"x", r.x}, {"y", r.y}, {"w", r.width}, {"h", r.height}});
    return Response::FromJson({{"boxes", out}});
  }

 private:
  int min_height_ = 8;
};
LUMEN_DEPLOYMENT(Detector);

// The ingress: detect, crop, recognize every region in one batch.
class Reader {
 public:
  static Reader* Create(const Json& args) {
    auto* r = new Reader;
    r->model_ = args.value("model", std::string("recognizer"));
    return r;
  }

  Response Call(const Request& req) {
    cv::Mat gray = Decode(req.body);
    if (gray.empty()) {
      return Response::Error(400,
                             "POST an image (PNG or JPEG) as the body, e.g. curl --data-binary "
                             "@page.png localhost:8000/ocr");
    }
    Request detect;
    detect.method = "POST";
    detect.body = req.body;
    auto found = lumen::serve::GetDeploymentHandle("Detector").Remote(detect).get();
    if (!found.ok())
      return Response::Error(503, "Detector: " + std::string(found.status().message()));
    if (found->status != 200) return *found;
    Json boxes = Json::parse(found->body)["boxes"];
    if (boxes.empty()) return Response::FromJson({{"boxes", Json::array()}, {"text", ""}});

    // One v2 request with every crop as a BYTES element (binary extension).
    std::string raw;
    for (const auto& b : boxes) {
      cv::Rect r(b["x"].get<int>(), b["y"].get<int>(), b["w"].get<int>(), b["h"].get<int>());
      std::vector<uchar> png;
      cv::imencode(".png", gray(r), png);
      uint32_t len = static_cast<uint32_t>(png.size());
      raw.append(reinterpret_cast<const char*>(&len), 4);
      raw.append(reinterpret_cast<const char*>(png.data()), png.size());
    }
    int64_t n = static_cast<int64_t>(boxes.size());
    Json header = {{"inputs",
                    {{{"name", "IMAGE"},
                      {"datatype", "BYTES"},
                      {"shape", {n, 1}},
                      {"parameters", {{"binary_data_size", raw.size()}}}}}}};
    Request infer;
    infer.method = "POST";
    infer.path = "/v2/models/" + model_ + "/infer";
    std::string h = header.dump();
    infer.headers["inference-header-content-length"] = std::to_string(h.size());
    infer.body = h + raw;
    auto read = lumen::serve::GetDeploymentHandle(model_).Remote(infer).get();
    if (!read.ok())
      return Response::Error(503, model_ + ": " + std::string(read.status().message()));
    if (read->status != 200) return *read;
    Json texts = Json::parse(read->body)["outputs"][0]["data"];
    // Words on one line (the next box's middle within this one's height)
    // joined by spaces, lines by newlines.
    std::string all;
    for (size_t i = 0; i < boxes.size() && i < texts.size(); ++i) {
      boxes[i]["text"] = texts[i];
      if (i > 0) {
        int mid = boxes[i]["y"].get<int>() + boxes[i]["h"].get<int>() / 2;
        int top = boxes[i - 1]["y"].get<int>();
        all += mid > top && mid < top + boxes[i - 1]["h"].get<int>() ? " " : "\n";
      }
      all += texts[i].get<std::string>();
    }
    return Response::FromJson({{"boxes", boxes}, {"text", all}});
  }

 private:
  std::string model_;
};
LUMEN_DEPLOYMENT(Reader);
