#include "dashboard/parse.h"

#include <gtest/gtest.h>

#include "dashboard/assets.h"

namespace lumen::dashboard {
namespace {

TEST(CookieValue, FindsTheNamedCookie) {
  EXPECT_EQ(CookieValue("a=1; lumen_session=abc; b=2", "lumen_session"), "abc");
  EXPECT_EQ(CookieValue("lumen_session=\"q\"", "lumen_session"), "q");
  EXPECT_EQ(CookieValue("xlumen_session=abc", "lumen_session"), "");
  EXPECT_EQ(CookieValue("lumen_session", "lumen_session"), "");
  EXPECT_EQ(CookieValue("", "lumen_session"), "");
  EXPECT_EQ(CookieValue(";;=;lumen_session= v ;", "lumen_session"), "v");
}

TEST(EntrypointArgv, PlainCommandsAreSplit) {
  using V = std::vector<std::string>;
  EXPECT_EQ(EntrypointArgv("  ./driver --n 3 "), (V{"./driver", "--n", "3"}));
  EXPECT_EQ(EntrypointArgv("echo 'a b' \"c d\" e\\ f"), (V{"echo", "a b", "c d", "e f"}));
  EXPECT_EQ(EntrypointArgv(""), V{});
  EXPECT_EQ(EntrypointArgv("echo 'open"), V{});
  EXPECT_EQ(EntrypointArgv("echo x\\"), V{});
}

TEST(EntrypointArgv, ShellSyntaxGoesToTheShell) {
  using V = std::vector<std::string>;
  EXPECT_EQ(EntrypointArgv("echo hi | wc -l"), (V{"/bin/sh", "-c", "echo hi | wc -l"}));
  EXPECT_EQ(EntrypointArgv("X=1 ./run"), (V{"/bin/sh", "-c", "X=1 ./run"}));
  EXPECT_EQ(EntrypointArgv("echo \"$HOME\""), (V{"/bin/sh", "-c", "echo \"$HOME\""}));
  EXPECT_EQ(EntrypointArgv("./run --x=1"), (V{"./run", "--x=1"}));
}

TEST(ServeMetrics, SumsOverProtocolsAndCodes) {
  std::map<ServeKey, ServeCounters> out;
  AddServeMetrics(
      "# HELP lumen_serve_requests_total x\n"
      "lumen_serve_requests_total{app=\"a\",deployment=\"D\",protocol=\"http\",code=\"200\"} 7\n"
      "lumen_serve_requests_total{app=\"a\",deployment=\"D\",protocol=\"grpc\",code=\"500\"} 3\n"
      "lumen_serve_errors_total{app=\"a\",deployment=\"D\",protocol=\"grpc\"} 3\n"
      "lumen_serve_request_latency_seconds_bucket{app=\"a\",deployment=\"D\",protocol=\"http\","
      "le=\"0.001\"} 4\n"
      "lumen_serve_request_latency_seconds_bucket{app=\"a\",deployment=\"D\",protocol=\"http\","
      "le=\"+Inf\"} 10\n"
      "lumen_serve_request_latency_seconds_count{app=\"a\",deployment=\"D\",protocol=\"http\"} 10\n"
      "lumen_serve_requests_total{app=\"broken} 1\n"
      "lumen_serve_requests_total{app=\"b\",deployment=\"E\"} NaN\n"
      "other_metric{app=\"a\",deployment=\"D\"} 99\n",
      &out);
  ASSERT_EQ(out.size(), 1u);
  const ServeCounters& c = out[{"a", "D"}];
  EXPECT_EQ(c.requests, 10);
  EXPECT_EQ(c.errors, 3);
  EXPECT_EQ(c.latency_count, 10);
  ASSERT_EQ(c.buckets.size(), 2u);
  EXPECT_EQ(c.buckets.at(0.001), 4);
}

TEST(HistogramQuantile, InterpolatesWithinTheBucket) {
  std::map<double, double> b = {{0.001, 50}, {0.01, 100}, {1.0 / 0.0, 100}};
  EXPECT_NEAR(HistogramQuantile(b, 0.5), 0.001, 1e-9);
  EXPECT_NEAR(HistogramQuantile(b, 0.75), 0.0055, 1e-9);
  EXPECT_EQ(HistogramQuantile({}, 0.5), 0);
  EXPECT_EQ(HistogramQuantile({{1.0, 0}}, 0.5), 0);
}

TEST(Assets, ThePageFilesAreCompiledIn) {
  EXPECT_NE(Asset("login.html").find("id=\"token\""), std::string_view::npos);
  EXPECT_NE(Asset("index.html").find("{{CSRF}}"), std::string_view::npos);
  EXPECT_FALSE(Asset("app.js").empty());
  EXPECT_TRUE(Asset("../secret").empty());
}

}  // namespace
}  // namespace lumen::dashboard
