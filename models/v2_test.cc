// The v2 protocol codec (models/v2.h): HTTP JSON and binary forms, gRPC.
#include "models/v2.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/grpc_service.pb.h"

namespace lumen::models::v2 {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Json = nlohmann::json;

template <typename T>
std::string Raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// BYTES elements in the binary layout: 4-byte little-endian length, bytes.
std::string RawStrings(const std::vector<std::string>& values) {
  return Tensor::FromStrings("", {}, values).data;
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> out(t.data.size() / sizeof(T));
  std::memcpy(out.data(), t.data.data(), out.size() * sizeof(T));
  return out;
}

// A body whose binary part follows its JSON; *header gets the JSON's length.
std::string WithBinary(const Json& j, const std::string& binary, std::string* header) {
  std::string text = j.dump();
  *header = std::to_string(text.size());
  return text + binary;
}

// Parses an HTTP answer: its JSON part, and the binary part after it.
Json AnswerJson(const std::string& body, size_t header_length, std::string* binary = nullptr) {
  size_t json_size = header_length == 0 ? body.size() : header_length;
  if (binary != nullptr) *binary = body.substr(json_size);
  return Json::parse(body.substr(0, json_size));
}

// Echoes a request's inputs as the response's outputs.
InferResponse Echo(const InferRequest& req) {
  InferResponse r{"m", "1", req.id, req.inputs};
  return r;
}

TEST(V2HttpTest, JsonRoundTripOfEachDatatype) {
  const Json inputs = Json::parse(R"([
    {"name": "bool", "datatype": "BOOL", "shape": [3], "data": [true, false, true]},
    {"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
    {"name": "u16", "datatype": "UINT16", "shape": [2], "data": [0, 65535]},
    {"name": "u32", "datatype": "UINT32", "shape": [2], "data": [0, 4294967295]},
    {"name": "u64", "datatype": "UINT64", "shape": [2], "data": [0, 18446744073709551615]},
    {"name": "i8", "datatype": "INT8", "shape": [2], "data": [-128, 127]},
    {"name": "i16", "datatype": "INT16", "shape": [2], "data": [-32768, 32767]},
    {"name": "i32", "datatype": "INT32", "shape": [2], "data": [-2147483648, 2147483647]},
    {"name": "i64", "datatype": "INT64", "shape": [2],
     "data": [-9223372036854775808, 9223372036854775807]},
    {"name": "f32", "datatype": "FP32", "shape": [4], "data": [1.5, -0.25, 0.1, 3]},
    {"name": "f64", "datatype": "FP64", "shape": [3], "data": [0.1, -1e300, 5e-324]},
    {"name": "str", "datatype": "BYTES", "shape": [3], "data": ["a", "h\u00e9llo", ""]}
  ])");
  Json request = {{"id", "r1"}, {"inputs", inputs}};
  absl::StatusOr<InferRequest> req = ParseHttpInfer(request.dump(), "");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->id, "r1");
  ASSERT_EQ(req->inputs.size(), 12u);
  for (const Tensor& t : req->inputs) EXPECT_TRUE(t.CheckSize().ok()) << t.name;

  EXPECT_EQ(req->inputs[0].data, std::string("\1\0\1", 3));
  EXPECT_EQ(Values<uint8_t>(req->inputs[1]), (std::vector<uint8_t>{0, 255}));
  EXPECT_EQ(Values<uint16_t>(req->inputs[2]), (std::vector<uint16_t>{0, 65535}));
  EXPECT_EQ(Values<uint32_t>(req->inputs[3]), (std::vector<uint32_t>{0, 4294967295u}));
  EXPECT_EQ(Values<uint64_t>(req->inputs[4]),
            (std::vector<uint64_t>{0, std::numeric_limits<uint64_t>::max()}));
  EXPECT_EQ(Values<int8_t>(req->inputs[5]), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(Values<int16_t>(req->inputs[6]), (std::vector<int16_t>{-32768, 32767}));
  EXPECT_EQ(Values<int32_t>(req->inputs[7]),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 2147483647}));
  EXPECT_EQ(Values<int64_t>(req->inputs[8]),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(Values<float>(req->inputs[9]), (std::vector<float>{1.5f, -0.25f, 0.1f, 3.0f}));
  EXPECT_EQ(Values<double>(req->inputs[10]), (std::vector<double>{0.1, -1e300, 5e-324}));
  EXPECT_EQ(*req->inputs[11].Strings(), (std::vector<std::string>{"a", "h\xc3\xa9llo", ""}));

  // Back out as JSON: the same values, the same order.
  size_t header_length = 1;
  std::string body = EncodeHttpInfer(Echo(*req), *req, &header_length);
  EXPECT_EQ(header_length, 0u);
  Json answer = Json::parse(body);
  EXPECT_EQ(answer["model_name"], "m");
  EXPECT_EQ(answer["model_version"], "1");
  EXPECT_EQ(answer["id"], "r1");
  ASSERT_EQ(answer["outputs"].size(), 12u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Json& out = answer["outputs"][i];
    SCOPED_TRACE(inputs[i]["name"].get<std::string>());
    EXPECT_EQ(out["name"], inputs[i]["name"]);
    EXPECT_EQ(out["datatype"], inputs[i]["datatype"]);
    EXPECT_EQ(out["shape"], inputs[i]["shape"]);
    EXPECT_FALSE(out.contains("parameters"));
    // Numbers compare by value (3 and 3.0 are the same FP32).
    ASSERT_EQ(out["data"].size(), inputs[i]["data"].size());
    for (size_t k = 0; k < out["data"].size(); ++k) {
      EXPECT_EQ(out["data"][k], inputs[i]["data"][k]) << k;
    }
  }

  // And parsed again as a request, the very same tensors.
  Json again = {{"inputs", answer["outputs"]}};
  absl::StatusOr<InferRequest> req2 = ParseHttpInfer(again.dump(), "");
  ASSERT_TRUE(req2.ok()) << req2.status();
  for (size_t i = 0; i < req->inputs.size(); ++i) {
    EXPECT_EQ(req2->inputs[i].data, req->inputs[i].data) << req->inputs[i].name;
  }
}

TEST(V2HttpTest, FloatLimitsRoundTripThroughJson) {
  const std::vector<float> f = {std::numeric_limits<float>::max(),
                                -std::numeric_limits<float>::max(),
                                std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::min(),
                                -0.0f,
                                0.1f};
  const std::vector<double> d = {std::numeric_limits<double>::max(),
                                 std::numeric_limits<double>::denorm_min(), -0.0, 0.1};
  InferResponse response{
      "m",
      "1",
      "",
      {Tensor::Of("f", DataType::kFp32, {6}, f), Tensor::Of("d", DataType::kFp64, {4}, d)}};
  size_t header_length = 0;
  Json answer = Json::parse(EncodeHttpInfer(response, InferRequest{}, &header_length));
  Json request = {{"inputs", answer["outputs"]}};
  absl::StatusOr<InferRequest> req = ParseHttpInfer(request.dump(), "");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->inputs[0].data, Raw(f));  // bit for bit, -0 included
  EXPECT_EQ(req->inputs[1].data, Raw(d));

  // Past FLT_MAX by less than half an ulp rounds to it; from there on, out.
  req = ParseHttpInfer(
      R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [3.40282356e38]}]})",
      "");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(Values<float>(req->inputs[0])[0], std::numeric_limits<float>::max());
  req = ParseHttpInfer(
      R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [3.40282357e38]}]})",
      "");
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(), HasSubstr("outside FP32's range"));
}

TEST(V2HttpTest, NestedDataIsRowMajor) {
  const char* body = R"({"inputs": [
    {"name": "x", "datatype": "INT32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]},
    {"name": "y", "datatype": "FP32", "shape": [2, 1, 2], "data": [[[1], [2]], [[3], [4]]]},
    {"name": "s", "datatype": "BYTES", "shape": [2, 1], "data": [["p"], ["q"]]},
    {"name": "e", "datatype": "INT32", "shape": [0, 4], "data": []}
  ]})";
  absl::StatusOr<InferRequest> req = ParseHttpInfer(body, "");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(Values<int32_t>(req->inputs[0]), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(req->inputs[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values<float>(req->inputs[1]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(*req->inputs[2].Strings(), (std::vector<std::string>{"p", "q"}));
  EXPECT_TRUE(req->inputs[3].data.empty());
}

// The fast path takes the usual request, its keys in any order, and reads
// it as the document path does; what it does not take (escapes, unknown
// keys, strings, errors) goes to the document path.
TEST(V2HttpTest, FastPathAgreesWithTheDocumentPath) {
  auto same = [](const std::string& body) {
    auto fast = internal::FastParseHttpInfer(body);
    auto slow = internal::ParseHttpInferDocument(body, "");
    ASSERT_TRUE(fast.has_value()) << body;
    ASSERT_TRUE(slow.ok()) << slow.status();
    EXPECT_EQ(fast->id, slow->id);
    ASSERT_EQ(fast->inputs.size(), slow->inputs.size());
    for (size_t i = 0; i < fast->inputs.size(); ++i) {
      EXPECT_EQ(fast->inputs[i].name, slow->inputs[i].name);
      EXPECT_EQ(fast->inputs[i].type, slow->inputs[i].type);
      EXPECT_EQ(fast->inputs[i].shape, slow->inputs[i].shape);
      EXPECT_EQ(fast->inputs[i].data, slow->inputs[i].data) << body;
    }
  };
  same(R"({"id":"r1","inputs":[{"name":"X","shape":[2,2],"datatype":"FP32",)"
       R"("data":[[1.5,-0],[1e3,0.1000000000000000055511151231257827]]}]})");
  same(R"( { "inputs" : [ {"name":"A","datatype":"INT64","shape":[3],)"
       R"("data":[-9223372036854775808,0,9223372036854775807]},)"
       R"({"name":"B","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},)"
       R"({"name":"C","datatype":"BOOL","shape":[2],"data":[true,false]},)"
       R"({"name":"D","datatype":"FP64","shape":[2],"data":[18446744073709551616,-2.5e-300]}]})");
  same(R"({"inputs":[{"name":"E","datatype":"INT8","shape":[0],"data":[]}]})");
  // Keys sorted, as nlohmann and other serializers write them: the data
  // comes before the shape and datatype it needs.
  same(R"({"inputs":[{"data":[[1,2.5],[3,-4]],"datatype":"FP32","name":"S","shape":[2,2]}]})");
  same(R"({"inputs":[{"data":[true],"shape":[1],"name":"T","datatype":"BOOL"}]})");
  // "-0" is the integer 0 to nlohmann: +0.0 as a float.
  auto zero = internal::FastParseHttpInfer(
      R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[-0]}]})");
  ASSERT_TRUE(zero.has_value());
  float z;
  std::memcpy(&z, zero->inputs[0].data.data(), 4);
  EXPECT_FALSE(std::signbit(z));
  for (const char* other : {
           R"({"inputs":[{"name":"X\u0041","datatype":"FP32","shape":[1],"data":[1]}]})",
           R"({"inputs":[{"name":"X","data":["1"],"datatype":"FP32","shape":[1]}]})",
           R"({"inputs":[{"data":[1,2],"name":"X","datatype":"FP32","shape":[1]}]})",
           R"({"inputs":[{"data":[1],"name":"X","datatype":"FP32"}]})",
           R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[]})",
           R"({"inputs":[{"name":"X","datatype":"INT8","shape":[1],"data":[300]}]})",
           R"({"inputs":[{"name":"X","datatype":"FP32","shape":[2],"data":[1]}]})",
           R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[1e39]}]})",
           R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[01]}]})",
           R"({"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[1]}]} x)",
           R"({"inputs":[{"name":"X","datatype":"BYTES","shape":[1],"data":["a"]}]})",
       }) {
    EXPECT_FALSE(internal::FastParseHttpInfer(other).has_value()) << other;
  }
}

TEST(V2HttpTest, BinaryExtensionRoundTripWithMixedInputs) {
  const std::vector<float> a = {1.5f, std::nanf(""), -0.0f};
  const std::vector<uint16_t> h = {0x3c00, 0xc000};  // FP16 1.0, -2.0
  const std::string c = RawStrings({"x", std::string("\xff\0z", 3)});
  Json j = {{"parameters", {{"binary_data_output", true}}},
            {"inputs",
             {{{"name", "a"},
               {"datatype", "FP32"},
               {"shape", {3}},
               {"parameters", {{"binary_data_size", 12}}}},
              {{"name", "b"}, {"datatype", "INT32"}, {"shape", {1}}, {"data", {7}}},
              {{"name", "h"},
               {"datatype", "FP16"},
               {"shape", {2}},
               {"parameters", {{"binary_data_size", 4}}}},
              {{"name", "c"},
               {"datatype", "BYTES"},
               {"shape", {2}},
               {"parameters", {{"binary_data_size", c.size()}}}}}},
            {"outputs",
             {{{"name", "a"}},
              {{"name", "b"}, {"parameters", {{"binary_data", false}}}},
              {{"name", "h"}, {"parameters", {{"binary_data", false}}}},
              {{"name", "c"}, {"parameters", {{"binary_data", true}}}}}}};
  std::string header;
  std::string body = WithBinary(j, Raw(a) + Raw(h) + c, &header);
  absl::StatusOr<InferRequest> req = ParseHttpInfer(body, header);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_TRUE(req->binary_output_default);
  EXPECT_EQ(req->parameters["binary_data_output"], true);
  ASSERT_EQ(req->inputs.size(), 4u);
  EXPECT_EQ(req->inputs[0].data, Raw(a));  // NaN and -0 kept bit for bit
  EXPECT_EQ(Values<int32_t>(req->inputs[1]), std::vector<int32_t>{7});
  EXPECT_EQ(req->inputs[2].data, Raw(h));
  EXPECT_EQ(req->inputs[3].data, c);
  ASSERT_EQ(req->outputs.size(), 4u);
  EXPECT_TRUE(req->outputs[0].binary);  // from binary_data_output
  EXPECT_FALSE(req->outputs[1].binary);
  EXPECT_FALSE(req->outputs[2].binary);
  EXPECT_TRUE(req->outputs[3].binary);

  size_t header_length = 0;
  std::string answer = EncodeHttpInfer(Echo(*req), *req, &header_length);
  ASSERT_GT(header_length, 0u);
  std::string binary;
  Json aj = AnswerJson(answer, header_length, &binary);
  const Json& outs = aj["outputs"];
  ASSERT_EQ(outs.size(), 4u);
  EXPECT_EQ(outs[0]["parameters"]["binary_data_size"], 12);
  EXPECT_FALSE(outs[0].contains("data"));
  EXPECT_EQ(outs[1]["data"], Json::parse("[7]"));
  EXPECT_EQ(outs[2]["data"], Json::parse("[1.0, -2.0]"));  // FP16 as JSON numbers
  EXPECT_EQ(outs[3]["parameters"]["binary_data_size"], c.size());
  EXPECT_EQ(outs[3]["datatype"], "BYTES");
  EXPECT_EQ(binary, Raw(a) + c);
}

TEST(V2HttpTest, OnlyAskedOutputsAreWritten) {
  InferRequest asked;
  asked.outputs = {{"b", false}};
  InferResponse response{"m",
                         "2",
                         "",
                         {Tensor::Of<int32_t>("a", DataType::kInt32, {1}, {1}),
                          Tensor::Of<int32_t>("b", DataType::kInt32, {1}, {2})}};
  size_t header_length = 7;
  Json j = Json::parse(EncodeHttpInfer(response, asked, &header_length));
  EXPECT_EQ(header_length, 0u);
  EXPECT_FALSE(j.contains("id"));
  ASSERT_EQ(j["outputs"].size(), 1u);
  EXPECT_EQ(j["outputs"][0]["name"], "b");
  EXPECT_EQ(j["outputs"][0]["data"], Json::parse("[2]"));
}

TEST(V2HttpTest, JsonOutputOfWhatJsonCannotHold) {
  std::vector<float> f = {std::nanf(""), std::numeric_limits<float>::infinity(), -0.0f, 0.1f};
  InferResponse response{"m",
                         "1",
                         "id\xff",
                         {Tensor::Of("f", DataType::kFp32, {4}, f),
                          Tensor::FromStrings("s", {2}, {std::string("\xff\xfe\0", 3), "ok"}),
                          // Malformed: shorter than its shape says. Written as far as it goes.
                          Tensor{"cut", DataType::kInt32, {4}, std::string(6, '\0')},
                          Tensor{"cutb", DataType::kBytes, {2}, std::string("\x05\0\0\0ab", 6)}}};
  size_t header_length = 0;
  std::string body = EncodeHttpInfer(response, InferRequest{}, &header_length);
  Json j = Json::parse(body);  // valid JSON despite the bytes
  const Json& outs = j["outputs"];
  EXPECT_EQ(outs[0]["data"], Json::parse("[null, null, -0.0, 0.1]"));
  EXPECT_TRUE(std::signbit(outs[0]["data"][2].get<double>()));
  EXPECT_EQ(outs[1]["data"][0], "\xef\xbf\xbd\xef\xbf\xbd" + std::string(1, '\0'));
  EXPECT_EQ(outs[1]["data"][1], "ok");
  EXPECT_EQ(outs[2]["data"], Json::parse("[0]"));
  EXPECT_EQ(outs[3]["data"], Json::parse("[]"));
}

TEST(V2HttpTest, ErrorJson) {
  EXPECT_EQ(Json::parse(ErrorJson("bad \"thing\"")), Json({{"error", "bad \"thing\""}}));
  EXPECT_NO_THROW(Json::parse(ErrorJson("not utf-8 \xff")));
}

struct BadCase {
  const char* what;
  std::string body;
  std::string header;
  std::vector<std::string> message;  // substrings of the error
};

std::string Input(const std::string& fields) { return R"({"inputs": [)" + fields + "]}"; }

TEST(V2HttpTest, Errors) {
  const std::string huge = R"({"name": "big", "datatype": "FP32", "shape": [1000000000000000000],)"
                           R"( "data": [1]})";
  std::string deep = R"({"inputs": [{"name": "d", "datatype": "INT32", "shape": [1], "data": )" +
                     std::string(100, '[') + "1" + std::string(100, ']') + "}]}";
  const std::string bin = R"({"inputs": [{"name": "b", "datatype": "FP32", "shape": [2],)"
                          R"( "parameters": {"binary_data_size": 8}}]})";
  const std::string bin_len = std::to_string(bin.size());
  const std::vector<BadCase> cases = {
      {"not JSON", "{\"inputs\": [", "", {"not valid JSON"}},
      {"JSON array", "[]", "", {"not an object"}},
      {"no inputs", "{}", "", {"'inputs'"}},
      {"too deep", deep, "", {"deeper than 64"}},
      {"no name",
       Input(R"({"datatype": "FP32", "shape": [1], "data": [1]})"),
       "",
       {"input 0", "no name"}},
      {"input not an object", Input("3"), "", {"input 0", "not an object"}},
      {"no datatype",
       Input(R"({"name": "x", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "datatype"}},
      {"unknown datatype",
       Input(R"({"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "unknown datatype 'FLOAT'"}},
      {"config datatype name",
       Input(R"({"name": "x", "datatype": "TYPE_FP32", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "unknown datatype"}},
      {"no shape",
       Input(R"({"name": "x", "datatype": "FP32", "data": [1]})"),
       "",
       {"'x'", "no 'shape'"}},
      {"negative dim",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]})"),
       "",
       {"'x'", "negative"}},
      {"float dim",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [1.5], "data": [1]})"),
       "",
       {"'x'", "not an integer"}},
      {"huge dim", Input(huge), "", {"'big'", "more elements than the request can carry"}},
      {"dim past int64",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [18446744073709551615], "data": []})"),
       "",
       {"'x'", "too large"}},
      {"dims whose product overflows",
       Input(R"({"name": "x", "datatype": "INT8", "shape": [4294967296, 4294967296], "data": []})"),
       "",
       {"'x'", "more elements"}},
      {"no data",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [1]})"),
       "",
       {"'x'", "no 'data'"}},
      {"count != shape",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]})"),
       "",
       {"'x'", "3 elements", "[2,2]", "needs 4"}},
      {"string in FP32",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [2], "data": [1, "2"]})"),
       "",
       {"'x'", "element 1 is a string", "FP32 needs numbers"}},
      {"INT8 overflow",
       Input(R"({"name": "x", "datatype": "INT8", "shape": [1], "data": [128]})"),
       "",
       {"'x'", "(128) is outside INT8's range"}},
      {"INT8 underflow",
       Input(R"({"name": "x", "datatype": "INT8", "shape": [1], "data": [-129]})"),
       "",
       {"'x'", "(-129) is outside INT8's range"}},
      {"negative UINT8",
       Input(R"({"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]})"),
       "",
       {"'x'", "outside UINT8's range"}},
      {"UINT64 past range",
       Input(R"({"name": "x", "datatype": "INT64", "shape": [1], "data": [9223372036854775808]})"),
       "",
       {"'x'", "outside INT64's range"}},
      {"fraction in INT32",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]})"),
       "",
       {"'x'", "not an integer"}},
      {"FP32 overflow",
       Input(R"({"name": "x", "datatype": "FP32", "shape": [1], "data": [1e39]})"),
       "",
       {"'x'", "outside FP32's range"}},
      {"number as BOOL",
       Input(R"({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "BOOL needs true or false"}},
      {"number as BYTES",
       Input(R"({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "BYTES needs strings"}},
      {"FP16 as JSON",
       Input(R"({"name": "x", "datatype": "FP16", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "FP16 needs the binary extension"}},
      {"object element",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1], "data": [{}]})"),
       "",
       {"'x'", "is a object"}},
      {"two inputs of one name",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1], "data": [1]},)"
             R"({"name": "x", "datatype": "INT32", "shape": [1], "data": [1]})"),
       "",
       {"'x'", "twice"}},
      {"data and binary",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1], "data": [1],)"
             R"( "parameters": {"binary_data_size": 4}})"),
       "",
       {"'x'", "both"}},
      {"binary size not a number",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1],)"
             R"( "parameters": {"binary_data_size": "4"}})"),
       "",
       {"'x'", "binary_data_size"}},
      {"negative binary size",
       Input(R"({"name": "x", "datatype": "INT32", "shape": [1],)"
             R"( "parameters": {"binary_data_size": -4}})"),
       "",
       {"'x'", "binary_data_size"}},
      // Without the header the raw bytes are taken for JSON, which nlohmann
      // would end at the first NUL.
      {"binary without a header",
       bin + std::string(8, '\0'),
       "",
       {"NUL byte at offset", "Inference-Header-Content-Length"}},
      {"NUL then junk", R"({"inputs": []})" + std::string(1, '\0') + "junk", "", {"NUL byte"}},
      {"binary size past the body",
       bin + std::string(7, '\0'),
       bin_len,
       {"'b'", "runs past the body", "7 bytes left"}},
      {"binary size off the shape",
       Input(R"({"name": "b", "datatype": "FP32", "shape": [3],)"
             R"( "parameters": {"binary_data_size": 8}})") +
           std::string(8, '\0'),
       std::to_string(Input(R"({"name": "b", "datatype": "FP32", "shape": [3],)"
                            R"( "parameters": {"binary_data_size": 8}})")
                          .size()),
       {"'b'", "needs 3 elements", "8 bytes given"}},
      {"leftover bytes", bin + std::string(9, '\0'), bin_len, {"1 bytes", "left over"}},
      {"header larger than the body",
       bin,
       std::to_string(bin.size() + 1),
       {"Inference-Header-Content-Length", "larger than the body"}},
      {"header far larger", bin, "99999999999999999999999", {"larger than the body"}},
      {"header not a number",
       bin,
       "12abc",
       {"Inference-Header-Content-Length '12abc'", "not a number"}},
      {"negative header", bin, "-1", {"not a number"}},
      {"blank header", bin, " ", {"not a number"}},
      {"id not a string", R"({"id": 1, "inputs": []})", "", {"'id'"}},
      {"binary_data_output not a bool",
       R"({"parameters": {"binary_data_output": 1}, "inputs": []})",
       "",
       {"binary_data_output"}},
      {"output binary_data not a bool",
       R"({"inputs": [], "outputs": [{"name": "o", "parameters": {"binary_data": "yes"}}]})",
       "",
       {"output 'o'", "binary_data"}},
      {"output without a name", R"({"inputs": [], "outputs": [{}]})", "", {"output 0", "no name"}},
      {"classification",
       R"({"inputs": [], "outputs": [{"name": "o",)"
       R"( "parameters": {"classification": 3}}]})",
       "",
       {"output 'o'", "classification", "not supported"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    absl::StatusOr<InferRequest> req = ParseHttpInfer(c.body, c.header);
    ASSERT_FALSE(req.ok());
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& m : c.message) EXPECT_THAT(req.status().message(), HasSubstr(m));
  }
}

TEST(V2HttpTest, BinaryBytesInputs) {
  const std::string good = RawStrings({"hello", "", std::string("\0\xff", 2)});
  Json j = {{"inputs",
             {{{"name", "s"},
               {"datatype", "BYTES"},
               {"shape", {3}},
               {"parameters", {{"binary_data_size", good.size()}}}}}}};
  std::string header;
  std::string body = WithBinary(j, good, &header);
  absl::StatusOr<InferRequest> req = ParseHttpInfer(body, header);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(*req->inputs[0].Strings(),
            (std::vector<std::string>{"hello", "", std::string("\0\xff", 2)}));

  // Truncated: the last element's length says more than follows.
  std::string cut = good.substr(0, good.size() - 1);
  j["inputs"][0]["parameters"]["binary_data_size"] = cut.size();
  body = WithBinary(j, cut, &header);
  req = ParseHttpInfer(body, header);
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(), AllOf(HasSubstr("'s'"), HasSubstr("element 2")));

  // A cut length prefix.
  std::string cut_len = RawStrings({"ab"}) + std::string("\x01\0", 2);
  j["inputs"][0]["shape"] = {2};
  j["inputs"][0]["parameters"]["binary_data_size"] = cut_len.size();
  body = WithBinary(j, cut_len, &header);
  req = ParseHttpInfer(body, header);
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(), AllOf(HasSubstr("'s'"), HasSubstr("cut length")));

  // Whole elements, but not as many as the shape says.
  std::string two = RawStrings({"a", "b"});
  j["inputs"][0]["shape"] = {3};
  j["inputs"][0]["parameters"]["binary_data_size"] = two.size();
  body = WithBinary(j, two, &header);
  req = ParseHttpInfer(body, header);
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(),
              AllOf(HasSubstr("'s'"), HasSubstr("2 BYTES elements"), HasSubstr("needs 3")));
}

TEST(V2HttpTest, TruncatedBinaryPayload) {
  Json j = {{"inputs",
             {{{"name", "a"},
               {"datatype", "INT64"},
               {"shape", {2}},
               {"parameters", {{"binary_data_size", 16}}}},
              {{"name", "b"},
               {"datatype", "INT64"},
               {"shape", {1}},
               {"parameters", {{"binary_data_size", 8}}}}}}};
  std::string header;
  std::string full = WithBinary(j, std::string(24, '\1'), &header);
  ASSERT_TRUE(ParseHttpInfer(full, header).ok());
  for (size_t cut = 1; cut <= 24; ++cut) {
    absl::StatusOr<InferRequest> req = ParseHttpInfer(full.substr(0, full.size() - cut), header);
    ASSERT_FALSE(req.ok()) << cut;
    EXPECT_THAT(req.status().message(),
                AllOf(HasSubstr(cut <= 8 ? "'b'" : "'a'"), HasSubstr("runs past the body")));
  }
}

TEST(V2HttpTest, HugeShapesAreRefusedBeforeAllocating) {
  // Counts an address space's worth of elements unless refused up front.
  for (const char* shape :
       {"[1000000000000000000]", "[1000000, 1000000, 1000000]", "[9223372036854775807, 2]"}) {
    for (const char* type : {"BYTES", "FP64", "BOOL"}) {
      SCOPED_TRACE(std::string(type) + shape);
      std::string body = std::string(R"({"inputs": [{"name": "h", "datatype": ")") + type +
                         R"(", "shape": )" + shape + R"(, "data": []}]})";
      absl::StatusOr<InferRequest> req = ParseHttpInfer(body, "");
      ASSERT_FALSE(req.ok());
      EXPECT_THAT(req.status().message(), AllOf(HasSubstr("'h'"), HasSubstr("more elements")));
    }
  }
  // The same with binary data that claims to fill it.
  Json j = {{"inputs",
             {{{"name", "h"},
               {"datatype", "UINT8"},
               {"shape", {1000000000000000000}},
               {"parameters", {{"binary_data_size", 4}}}}}}};
  std::string header;
  std::string body = WithBinary(j, "abcd", &header);
  absl::StatusOr<InferRequest> req = ParseHttpInfer(body, header);
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(), HasSubstr("'h'"));
}

TEST(V2HttpTest, ParametersAndOutputs) {
  const char* body = R"({"id": "q", "parameters": {"priority": 2, "tag": "t"}, "inputs": [],
    "outputs": [{"name": "o1"}, {"name": "o2", "parameters": {"binary_data": true}}]})";
  absl::StatusOr<InferRequest> req = ParseHttpInfer(body, "");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->parameters, Json::parse(R"({"priority": 2, "tag": "t"})"));
  EXPECT_FALSE(req->binary_output_default);
  ASSERT_EQ(req->outputs.size(), 2u);
  EXPECT_EQ(req->outputs[0].name, "o1");
  EXPECT_FALSE(req->outputs[0].binary);
  EXPECT_TRUE(req->outputs[1].binary);
  // A header length equal to the body: all JSON, nothing binary.
  EXPECT_TRUE(ParseHttpInfer(body, std::to_string(std::strlen(body))).ok());
}

// gRPC

inference::ModelInferRequest::InferInputTensor* AddInput(inference::ModelInferRequest* r,
                                                         const std::string& name,
                                                         const std::string& datatype,
                                                         std::vector<int64_t> shape) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

TEST(V2GrpcTest, RawInputContentsRoundTrip) {
  inference::ModelInferRequest r;
  r.set_model_name("m");
  r.set_model_version("3");
  r.set_id("abc");
  (*r.mutable_parameters())["priority"].set_int64_param(5);
  (*r.mutable_parameters())["flag"].set_bool_param(true);
  (*r.mutable_parameters())["s"].set_string_param("v");
  (*r.mutable_parameters())["d"].set_double_param(0.5);
  (*r.mutable_parameters())["u"].set_uint64_param(7);
  const std::vector<float> f = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> h = {0x3c00};
  const std::string s = RawStrings({"one", "two"});
  AddInput(&r, "f", "FP32", {2, 3});
  AddInput(&r, "h", "FP16", {1});
  AddInput(&r, "s", "BYTES", {2});
  r.add_raw_input_contents(Raw(f));
  r.add_raw_input_contents(Raw(h));
  r.add_raw_input_contents(s);
  r.add_outputs()->set_name("f");

  absl::StatusOr<InferRequest> req = FromGrpc(r);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->model, "m");
  EXPECT_EQ(req->version, "3");
  EXPECT_EQ(req->id, "abc");
  EXPECT_EQ(req->parameters,
            Json::parse(R"({"priority": 5, "flag": true, "s": "v", "d": 0.5, "u": 7})"));
  ASSERT_EQ(req->inputs.size(), 3u);
  EXPECT_EQ(req->inputs[0].type, DataType::kFp32);
  EXPECT_EQ(req->inputs[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(req->inputs[0].data, Raw(f));
  EXPECT_EQ(req->inputs[1].data, Raw(h));
  EXPECT_EQ(req->inputs[2].data, s);
  ASSERT_EQ(req->outputs.size(), 1u);
  EXPECT_EQ(req->outputs[0].name, "f");

  inference::ModelInferResponse out;
  out.set_model_name("stale");
  ToGrpc(Echo(*req), &out);
  EXPECT_EQ(out.model_name(), "m");
  EXPECT_EQ(out.model_version(), "1");
  EXPECT_EQ(out.id(), "abc");
  ASSERT_EQ(out.outputs_size(), 3);
  ASSERT_EQ(out.raw_output_contents_size(), 3);
  EXPECT_EQ(out.outputs(0).name(), "f");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_THAT(out.outputs(0).shape(), ::testing::ElementsAre(2, 3));
  EXPECT_FALSE(out.outputs(0).has_contents());
  EXPECT_EQ(out.raw_output_contents(0), Raw(f));
  EXPECT_EQ(out.outputs(1).datatype(), "FP16");
  EXPECT_EQ(out.raw_output_contents(2), s);

  // Through the wire format and back, as a client would see it.
  inference::ModelInferRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(r.SerializeAsString()));
  absl::StatusOr<InferRequest> again = FromGrpc(parsed);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->inputs[2].data, s);
}

TEST(V2GrpcTest, TypedContents) {
  inference::ModelInferRequest r;
  auto* b = AddInput(&r, "b", "BOOL", {2})->mutable_contents();
  b->add_bool_contents(true);
  b->add_bool_contents(false);
  auto* i8 = AddInput(&r, "i8", "INT8", {2})->mutable_contents();
  i8->add_int_contents(-128);
  i8->add_int_contents(127);
  AddInput(&r, "i16", "INT16", {1})->mutable_contents()->add_int_contents(-300);
  AddInput(&r, "i32", "INT32", {1})->mutable_contents()->add_int_contents(1 << 30);
  AddInput(&r, "i64", "INT64", {1})->mutable_contents()->add_int64_contents(-(int64_t{1} << 40));
  AddInput(&r, "u8", "UINT8", {1})->mutable_contents()->add_uint_contents(255);
  AddInput(&r, "u16", "UINT16", {1})->mutable_contents()->add_uint_contents(65535);
  AddInput(&r, "u32", "UINT32", {1})->mutable_contents()->add_uint_contents(4000000000u);
  AddInput(&r, "u64", "UINT64", {1})->mutable_contents()->add_uint64_contents(~uint64_t{0});
  auto* f32 = AddInput(&r, "f32", "FP32", {1, 2})->mutable_contents();
  f32->add_fp32_contents(0.5f);
  f32->add_fp32_contents(-1.0f);
  AddInput(&r, "f64", "FP64", {1})->mutable_contents()->add_fp64_contents(1e300);
  auto* s = AddInput(&r, "s", "BYTES", {2})->mutable_contents();
  s->add_bytes_contents("x");
  s->add_bytes_contents(std::string("\0y", 2));
  AddInput(&r, "empty", "FP32", {0});  // no contents at all

  absl::StatusOr<InferRequest> req = FromGrpc(r);
  ASSERT_TRUE(req.ok()) << req.status();
  const std::vector<Tensor>& in = req->inputs;
  ASSERT_EQ(in.size(), 13u);
  for (const Tensor& t : in) EXPECT_TRUE(t.CheckSize().ok()) << t.name;
  EXPECT_EQ(in[0].data, std::string("\1\0", 2));
  EXPECT_EQ(Values<int8_t>(in[1]), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(Values<int16_t>(in[2]), std::vector<int16_t>{-300});
  EXPECT_EQ(Values<int32_t>(in[3]), std::vector<int32_t>{1 << 30});
  EXPECT_EQ(Values<int64_t>(in[4]), std::vector<int64_t>{-(int64_t{1} << 40)});
  EXPECT_EQ(Values<uint8_t>(in[5]), std::vector<uint8_t>{255});
  EXPECT_EQ(Values<uint16_t>(in[6]), std::vector<uint16_t>{65535});
  EXPECT_EQ(Values<uint32_t>(in[7]), std::vector<uint32_t>{4000000000u});
  EXPECT_EQ(Values<uint64_t>(in[8]), std::vector<uint64_t>{~uint64_t{0}});
  EXPECT_EQ(Values<float>(in[9]), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(Values<double>(in[10]), std::vector<double>{1e300});
  EXPECT_EQ(*in[11].Strings(), (std::vector<std::string>{"x", std::string("\0y", 2)}));
  EXPECT_TRUE(in[12].data.empty());

  // The same tensors as raw contents give the same request.
  inference::ModelInferResponse out;
  ToGrpc(Echo(*req), &out);
  inference::ModelInferRequest raw;
  for (int i = 0; i < out.outputs_size(); ++i) {
    AddInput(&raw, out.outputs(i).name(), out.outputs(i).datatype(),
             std::vector<int64_t>(out.outputs(i).shape().begin(), out.outputs(i).shape().end()));
    raw.add_raw_input_contents(out.raw_output_contents(i));
  }
  absl::StatusOr<InferRequest> again = FromGrpc(raw);
  ASSERT_TRUE(again.ok()) << again.status();
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(again->inputs[i].data, in[i].data) << i;
}

TEST(V2GrpcTest, Errors) {
  struct Case {
    const char* what;
    std::function<void(inference::ModelInferRequest*)> build;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"INT8 out of range",
       [](auto* r) { AddInput(r, "x", "INT8", {1})->mutable_contents()->add_int_contents(300); },
       {"'x'", "(300) is outside INT8's range"}},
      {"UINT16 out of range",
       [](auto* r) {
         AddInput(r, "x", "UINT16", {1})->mutable_contents()->add_uint_contents(70000);
       },
       {"'x'", "outside UINT16's range"}},
      {"wrong field",
       [](auto* r) { AddInput(r, "x", "FP32", {1})->mutable_contents()->add_int_contents(1); },
       {"'x'", "contents.int_contents is set", "contents.fp32_contents"}},
      {"a second field",
       [](auto* r) {
         auto* c = AddInput(r, "x", "FP32", {2})->mutable_contents();
         c->add_fp32_contents(1);
         c->add_bytes_contents("2");
       },
       {"'x'", "contents.bytes_contents is set", "contents.fp32_contents"}},
      {"count != shape",
       [](auto* r) { AddInput(r, "x", "FP64", {2})->mutable_contents()->add_fp64_contents(1); },
       {"'x'", "1 elements", "needs 2"}},
      {"no contents", [](auto* r) { AddInput(r, "x", "FP64", {2}); }, {"'x'", "0 elements"}},
      {"FP16 typed",
       [](auto* r) { AddInput(r, "x", "FP16", {1})->mutable_contents()->add_fp32_contents(1); },
       {"'x'", "FP16 needs raw_input_contents"}},
      {"unknown datatype",
       [](auto* r) { AddInput(r, "x", "float32", {1}); },
       {"'x'", "unknown datatype 'float32'"}},
      {"no name", [](auto* r) { AddInput(r, "", "FP32", {1}); }, {"input 0 has no name"}},
      {"negative dim", [](auto* r) { AddInput(r, "x", "FP32", {-1}); }, {"'x'", "negative"}},
      {"huge dim, typed",
       [](auto* r) {
         AddInput(r, "x", "FP32", {1000000000000000000})->mutable_contents()->add_fp32_contents(1);
       },
       {"'x'", "more elements"}},
      {"huge dims, raw",
       [](auto* r) {
         AddInput(r, "x", "UINT8", {1 << 28, 1 << 28});
         r->add_raw_input_contents("abcd");
       },
       {"'x'", "needs 72057594037927936 elements", "4 bytes given"}},
      {"dims past the bound, raw",
       [](auto* r) {
         AddInput(r, "x", "UINT8", {1 << 30, 1 << 30});
         r->add_raw_input_contents("abcd");
       },
       {"'x'", "more elements"}},
      {"raw size off the shape",
       [](auto* r) {
         AddInput(r, "x", "INT32", {2});
         r->add_raw_input_contents("abcdef");
       },
       {"'x'", "6 bytes given"}},
      {"raw BYTES cut",
       [](auto* r) {
         AddInput(r, "x", "BYTES", {1});
         r->add_raw_input_contents(std::string("\x09\0\0\0abc", 7));
       },
       {"'x'", "says 9 bytes"}},
      {"raw for some inputs",
       [](auto* r) {
         AddInput(r, "x", "INT32", {1});
         AddInput(r, "y", "INT32", {1});
         r->add_raw_input_contents("abcd");
       },
       {"raw_input_contents has 1 entries for 2 inputs"}},
      {"raw and contents",
       [](auto* r) {
         AddInput(r, "x", "INT32", {1})->mutable_contents()->add_int_contents(1);
         r->add_raw_input_contents("abcd");
       },
       {"'x'", "both"}},
      {"two inputs of one name",
       [](auto* r) {
         AddInput(r, "x", "INT32", {1})->mutable_contents()->add_int_contents(1);
         AddInput(r, "x", "INT32", {1})->mutable_contents()->add_int_contents(1);
       },
       {"'x'", "twice"}},
      {"output twice",
       [](auto* r) {
         r->add_outputs()->set_name("o");
         r->add_outputs()->set_name("o");
       },
       {"output 'o'", "twice"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    inference::ModelInferRequest r;
    c.build(&r);
    absl::StatusOr<InferRequest> req = FromGrpc(r);
    ASSERT_FALSE(req.ok());
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& m : c.message) EXPECT_THAT(req.status().message(), HasSubstr(m));
  }
}

}  // namespace
}  // namespace lumen::models::v2
