// The semantic cache (semantic_cache.h) and the built-in embedders
// (embedder.h).
#include "models/cache/semantic_cache.h"

#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lumen/tensor.h"
#include "models/cache/embedder.h"

namespace lumen::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

serve::Response Answer(const std::string& body) { return serve::Response::Text(body); }

std::unique_ptr<SemanticCache> MakeCache(SemanticCacheOptions o) {
  auto c = SemanticCache::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

float Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return static_cast<float>(dot / std::sqrt(na * nb));
}

// A unit vector at `angle` radians from e0 in the (e0, e1) plane.
std::vector<float> At(double angle, int dim = 8) {
  std::vector<float> v(dim, 0.0f);
  v[0] = static_cast<float>(std::cos(angle));
  v[1] = static_cast<float>(std::sin(angle));
  return v;
}

// Basis vector i (orthogonal to every other).
std::vector<float> Basis(int i, int dim = 8) {
  std::vector<float> v(dim, 0.0f);
  v[i] = 1.0f;
  return v;
}

std::string BodyOf(const absl::StatusOr<std::optional<CacheHit>>& hit) {
  if (!hit.ok() || !hit->has_value()) return "";
  return (*hit)->response.body;
}

// ---- text embedder + cache -------------------------------------------------

class TextCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    embedder_ = MakeTextEmbedder();
    SemanticCacheOptions o;
    o.dim = embedder_->dim();
    o.threshold = embedder_->default_threshold();
    cache_ = MakeCache(o);
  }
  std::vector<float> Embed(const std::string& text) {
    serve::Request r;
    r.method = "POST";
    r.body = text;
    auto v = embedder_->Embed(r);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<float>{};
  }
  std::vector<uint64_t> Terms(const std::string& text) { return TextTerms(text); }
  void Put(const std::string& text, const std::string& answer) {
    ASSERT_TRUE(cache_->Insert("ns", Embed(text), Answer(answer), Terms(text)).ok());
  }
  std::string Get(const std::string& text) {
    return BodyOf(cache_->Lookup("ns", Embed(text), Terms(text)));
  }

  std::unique_ptr<Embedder> embedder_;
  std::unique_ptr<SemanticCache> cache_;
};

TEST_F(TextCacheTest, ExactRepeatHits) {
  Put("What is the capital of France?", "Paris");
  auto hit = cache_->Lookup("ns", Embed("What is the capital of France?"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->response.body, "Paris");
  EXPECT_NEAR((*hit)->similarity, 1.0f, 1e-4);
  EXPECT_EQ(cache_->Stats().hits, 1u);
}

TEST_F(TextCacheTest, ParaphrasesHitUnrelatedMiss) {
  Put("What is the capital of France?", "Paris");
  Put("How do I reset my password?", "Settings > Security");
  EXPECT_EQ(Get("what's the capital city of france"), "Paris");
  EXPECT_EQ(Get("WHAT IS THE CAPITAL OF FRANCE"), "Paris");
  EXPECT_EQ(Get("Hey, quick question: what is France's capital?"), "Paris");
  EXPECT_EQ(Get("how can i reset my passwords"), "Settings > Security");
  EXPECT_EQ(Get("What is the capital of Germany?"), "");
  EXPECT_EQ(Get("How do I bake sourdough bread?"), "");
  EXPECT_EQ(Get("What is the population of France?"), "");
  EXPECT_EQ(Get("How do I reset my router?"), "");
}

// Templated traffic: siblings share every word but the entity, and the
// terms' rarity among the stored requests is what keeps them apart.
TEST_F(TextCacheTest, TemplateSiblingsMissTheirParaphrasesHit) {
  for (const char* store : {"Walmart", "Costco", "Target", "IKEA", "Kroger", "Walgreens"}) {
    Put(absl::StrCat("What time does ", store, " open on Sunday?"), store);
  }
  EXPECT_EQ(cache_->Stats().entries, 6u);  // similar, but not merged
  EXPECT_EQ(Get("what time does walmart open on sunday"), "Walmart");
  EXPECT_EQ(Get("IKEA opening time on Sunday?"), "IKEA");
  EXPECT_EQ(Get("Hey, what time does Kroger open on Sundays?"), "Kroger");
  EXPECT_EQ(Get("What time does Best Buy open on Sunday?"), "");
  EXPECT_EQ(Get("What time does Home Depot open on Sunday?"), "");
  EXPECT_EQ(Get("What time does Walmart close on Sunday?"), "");
}

TEST_F(TextCacheTest, SimilarityOrdersAsExpected) {
  auto base = Embed("What is the capital of France?");
  float paraphrase = Cosine(base, Embed("what's the capital city of france"));
  float sibling = Cosine(base, Embed("What is the capital of Spain?"));
  float unrelated = Cosine(base, Embed("Recommend a thriller movie for tonight"));
  EXPECT_GT(paraphrase, sibling);
  EXPECT_GT(sibling, unrelated);
  EXPECT_LT(unrelated, 0.2f);
}

TEST(TextEmbedderTest, NormalizesWords) {
  EXPECT_THAT(TextTokens("What's the capital of France?"), ElementsAre("what", "capital", "franc"));
  EXPECT_THAT(TextTokens("I can't reset my Passwords!"), ElementsAre("not", "reset", "password"));
  EXPECT_THAT(TextTokens("Which cities are closing?"), ElementsAre("what", "city", "clos"));
  EXPECT_THAT(TextTokens("It’s raining"), ElementsAre("rain"));
}

TEST(TextEmbedderTest, DeterministicAndUnitLength) {
  auto a = TextEmbedding("How tall is Mount Everest?");
  auto b = TextEmbedding("How tall is Mount Everest?");
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 512u);
  double norm = 0;
  for (float x : a) norm += x * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  // Only stop words: still a vector (from the words themselves), not zero.
  auto c = TextEmbedding("how are you?");
  double cn = 0;
  for (float x : c) cn += x * x;
  EXPECT_NEAR(cn, 1.0, 1e-5);
}

TEST(TextEmbedderTest, NothingToEmbedIsAnError) {
  auto e = MakeTextEmbedder();
  serve::Request r;
  r.method = "GET";
  auto v = e->Embed(r);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("no text"));
}

// ---- the cache on hand-made vectors -------------------------------------------

TEST(SemanticCacheTest, ThresholdRespected) {
  for (float threshold : {0.85f, 0.95f}) {
    SemanticCacheOptions o;
    o.threshold = threshold;
    auto cache = MakeCache(o);
    ASSERT_TRUE(cache->Insert("ns", At(0), Answer("a")).ok());
    // cos(0.45) = 0.9004: above 0.85, below 0.95.
    auto hit = cache->Lookup("ns", At(0.45));
    ASSERT_TRUE(hit.ok());
    if (threshold < 0.9f) {
      ASSERT_TRUE(hit->has_value());
      EXPECT_NEAR((*hit)->similarity, std::cos(0.45), 1e-4);
    } else {
      EXPECT_FALSE(hit->has_value());
    }
  }
}

TEST(SemanticCacheTest, VectorsNeedNotBeNormalized) {
  auto cache = MakeCache({});
  std::vector<float> v = {3, 4, 0};
  ASSERT_TRUE(cache->Insert("ns", v, Answer("a")).ok());
  EXPECT_EQ(BodyOf(cache->Lookup("ns", std::vector<float>{30, 40, 0})), "a");
}

TEST(SemanticCacheTest, TermsTellApartEqualVectors) {
  SemanticCacheOptions o;
  o.threshold = 0.9f;
  o.term_weight = 0.5f;
  auto cache = MakeCache(o);
  std::vector<uint64_t> a = {1, 2, 3}, b = {1, 2, 4};
  ASSERT_TRUE(cache->Insert("ns", Basis(0), Answer("a"), a).ok());
  ASSERT_TRUE(cache->Insert("ns", Basis(0), Answer("b"), b).ok());  // not merged: terms differ
  EXPECT_EQ(cache->Stats().entries, 2u);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0), a)), "a");
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0), std::vector<uint64_t>{4, 2, 1, 4})), "b");
  // Only term 3 or 4 tells them apart, and neither is asked: no hit.
  auto neither = cache->Lookup("ns", Basis(0), std::vector<uint64_t>{1, 2, 5});
  ASSERT_TRUE(neither.ok());
  EXPECT_FALSE(neither->has_value());
  // Without terms, the vectors alone decide.
  auto plain = cache->Lookup("ns", Basis(0));
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->has_value());
}

TEST(SemanticCacheTest, NamespacesAreIsolated) {
  auto cache = MakeCache({});
  ASSERT_TRUE(cache->Insert("app1/v2/models/a", Basis(0), Answer("a")).ok());
  ASSERT_TRUE(cache->Insert("app2/v2/models/a", Basis(0), Answer("b")).ok());
  EXPECT_EQ(BodyOf(cache->Lookup("app1/v2/models/a", Basis(0))), "a");
  EXPECT_EQ(BodyOf(cache->Lookup("app2/v2/models/a", Basis(0))), "b");
  auto other = cache->Lookup("app1/v2/models/b", Basis(0));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  EXPECT_EQ(cache->Stats().namespaces, 2u);
}

TEST(SemanticCacheTest, NearDuplicateInsertReplaces) {
  auto cache = MakeCache({});
  ASSERT_TRUE(cache->Insert("ns", At(0), Answer("old")).ok());
  ASSERT_TRUE(cache->Insert("ns", At(0.01), Answer("new")).ok());
  EXPECT_EQ(cache->Stats().entries, 1u);
  EXPECT_EQ(cache->Stats().replaced, 1u);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", At(0))), "new");
}

TEST(SemanticCacheTest, LruBound) {
  SemanticCacheOptions o;
  o.max_entries = 3;
  auto cache = MakeCache(o);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(cache->Insert("ns", Basis(i), Answer(absl::StrCat(i))).ok());
  }
  // Using 0 makes 1 the least recently used.
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0))), "0");
  ASSERT_TRUE(cache->Insert("other", Basis(3), Answer("3")).ok());  // bound is across namespaces
  CacheStats s = cache->Stats();
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(1))), "");
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0))), "0");
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(2))), "2");
  EXPECT_EQ(BodyOf(cache->Lookup("other", Basis(3))), "3");
  // The evicted vector is gone from the index too, not only from the books:
  // a lookup near it finds nothing (rather than a dangling id).
  auto near1 = cache->Lookup("ns", At(1.5707, 8));
  ASSERT_TRUE(near1.ok());
  EXPECT_FALSE(near1->has_value());
}

TEST(SemanticCacheTest, TtlExpires) {
  FakeClock clock;
  SemanticCacheOptions o;
  o.ttl_s = 0.05;
  o.clock = &clock;
  auto cache = MakeCache(o);
  ASSERT_TRUE(cache->Insert("ns", Basis(0), Answer("a")).ok());
  clock.AdvanceMs(40);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0))), "a");  // a hit does not extend the ttl
  ASSERT_TRUE(cache->Insert("ns", Basis(1), Answer("b")).ok());
  clock.AdvanceMs(15);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(0))), "");
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(1))), "b");
  clock.AdvanceMs(50);
  EXPECT_EQ(BodyOf(cache->Lookup("ns", Basis(1))), "");
  CacheStats s = cache->Stats();
  EXPECT_EQ(s.expired, 2u);
  EXPECT_EQ(s.entries, 0u);
  EXPECT_EQ(s.namespaces, 0u);
}

TEST(SemanticCacheTest, TtlOnTheRealClock) {
  SemanticCacheOptions o;
  o.ttl_s = 0.05;
  auto cache = MakeCache(o);
  ASSERT_TRUE(cache->Insert("ns", Basis(0), Answer("a")).ok());
  // Polls until the entry is gone, bounded by a deadline far above the ttl.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() < deadline) {
    gone = BodyOf(cache->Lookup("ns", Basis(0))).empty();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(gone);
  EXPECT_EQ(cache->Stats().expired, 1u);
}

TEST(SemanticCacheTest, BadInputsSayWhat) {
  SemanticCacheOptions o;
  o.threshold = 1.5f;
  auto bad = SemanticCache::Create(o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("threshold"));
  o = {};
  o.ttl_s = -1;
  EXPECT_THAT(SemanticCache::Create(o).status().message(), HasSubstr("ttl_s"));

  auto cache = MakeCache({});
  ASSERT_TRUE(cache->Insert("ns", Basis(0, 8), Answer("a")).ok());  // fixes dim at 8
  auto wrong = cache->Lookup("ns", Basis(0, 4));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("4 floats where the cache holds 8"));
  auto zero = cache->Insert("ns", std::vector<float>(8, 0.0f), Answer("z"));
  EXPECT_THAT(zero.message(), HasSubstr("zero"));
}

TEST(SemanticCacheTest, ConcurrentInsertAndLookup) {
  SemanticCacheOptions o;
  o.max_entries = 300;
  o.threshold = 0.999f;
  auto cache = MakeCache(o);
  constexpr int kThreads = 8, kOps = 300, kDim = 32;
  std::atomic<int> failures{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        // Vector i of thread t: a distinct direction, keyed to its answer.
        std::vector<float> v(kDim, 0.0f);
        v[t % kDim] = 1.0f;
        v[(i % (kDim - 1) + t + 1) % kDim] += 0.5f + static_cast<float>(i) / kOps;
        std::string ns = (i % 3 == 0) ? "shared" : absl::StrCat("t", t);
        std::string key = absl::StrCat(t, "/", i);
        if (!cache->Insert(ns, v, Answer(key)).ok()) failures++;
        auto hit = cache->Lookup(ns, v);
        if (!hit.ok()) failures++;
        // A hit may be another thread's replacement of the same direction,
        // but always an answer some thread stored for a vector this close.
        if (hit.ok() && hit->has_value() && (*hit)->similarity < 0.999f) wrong++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  CacheStats s = cache->Stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<uint64_t>(kThreads * kOps));
  EXPECT_LE(s.entries, 300u);
  EXPECT_EQ(s.inserts, s.entries + s.evictions);
}

// ---- image embedder ---------------------------------------------------------

// A picture with shapes and text; `variant` changes what is drawn.
cv::Mat Render(int variant) {
  cv::Mat img(240, 320, CV_8UC3, cv::Scalar(235, 235, 235));
  if (variant == 0) {
    cv::circle(img, {90, 110}, 60, cv::Scalar(30, 60, 200), cv::FILLED);
    cv::rectangle(img, {180, 40}, {300, 200}, cv::Scalar(40, 150, 40), cv::FILLED);
    cv::putText(img, "lumen", {20, 225}, cv::FONT_HERSHEY_SIMPLEX, 1.0, cv::Scalar(0, 0, 0), 2);
  } else {
    cv::rectangle(img, {20, 20}, {140, 120}, cv::Scalar(200, 40, 40), cv::FILLED);
    cv::circle(img, {240, 170}, 55, cv::Scalar(20, 20, 20), cv::FILLED);
    cv::putText(img, "cache", {150, 60}, cv::FONT_HERSHEY_SIMPLEX, 1.2, cv::Scalar(90, 0, 90), 2);
  }
  return img;
}

std::string Encode(const cv::Mat& img, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uint8_t> buf;
  EXPECT_TRUE(cv::imencode(ext, img, buf, params));
  return std::string(buf.begin(), buf.end());
}

TEST(ImageEmbedderTest, ReencodedAndResizedHitsDifferentMisses) {
  auto embedder = MakeImageEmbedder();
  SemanticCacheOptions o;
  o.threshold = embedder->default_threshold();
  auto cache = MakeCache(o);
  serve::Request original;
  original.method = "POST";
  original.headers["content-type"] = "image/png";
  original.body = Encode(Render(0), ".png");
  auto v = embedder->Embed(original);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), static_cast<size_t>(kImageEmbeddingDim));
  ASSERT_TRUE(cache->Insert("img", *v, Answer("circle and square")).ok());

  // The same picture, 90% the size, as a JPEG of quality 80.
  cv::Mat smaller;
  cv::resize(Render(0), smaller, cv::Size(288, 216), 0, 0, cv::INTER_AREA);
  serve::Request copy = original;
  copy.body = Encode(smaller, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 80});
  auto cv_ = embedder->Embed(copy);
  ASSERT_TRUE(cv_.ok()) << cv_.status();
  auto hit = cache->Lookup("img", *cv_);
  ASSERT_TRUE(hit.ok());
  ASSERT_TRUE(hit->has_value()) << "similarity " << Cosine(*v, *cv_);
  EXPECT_EQ((*hit)->response.body, "circle and square");

  serve::Request other = original;
  other.body = Encode(Render(1), ".png");
  auto ov = embedder->Embed(other);
  ASSERT_TRUE(ov.ok());
  auto miss = cache->Lookup("img", *ov);
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value()) << "similarity " << (*miss)->similarity;
}

TEST(ImageEmbedderTest, ImageFromV2BytesInput) {
  auto embedder = MakeImageEmbedder();
  std::string png = Encode(Render(0), ".png");
  serve::Request raw;
  raw.body = png;
  // The v2 binary form: the JSON, then the BYTES tensor's raw elements.
  std::string tensor = Tensor::FromStrings("IMAGE", {1}, {png}).data;
  std::string json =
      absl::StrCat(R"({"inputs":[{"name":"IMAGE","datatype":"BYTES","shape":[1],"parameters":)",
                   R"({"binary_data_size":)", tensor.size(), "}}]}");
  serve::Request v2;
  v2.method = "POST";
  v2.path = "/v2/models/ocr/infer";
  v2.headers["inference-header-content-length"] = std::to_string(json.size());
  v2.body = json + tensor;
  auto a = embedder->Embed(raw);
  auto b = embedder->Embed(v2);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
}

TEST(ImageEmbedderTest, NotAnImage) {
  auto embedder = MakeImageEmbedder();
  serve::Request r;
  r.body = "certainly not a picture";
  auto v = embedder->Embed(r);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("cannot decode"));
}

}  // namespace
}  // namespace lumen::models
