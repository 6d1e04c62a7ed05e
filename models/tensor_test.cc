#include "lumen/tensor.h"

#include <gtest/gtest.h>

namespace lumen::models {
namespace {

TEST(TensorTest, DataTypesByEitherName) {
  EXPECT_EQ(ParseDataType("FP32"), DataType::kFp32);
  EXPECT_EQ(ParseDataType("TYPE_FP32"), DataType::kFp32);
  EXPECT_EQ(ParseDataType("TYPE_STRING"), DataType::kBytes);
  EXPECT_FALSE(ParseDataType("FLOAT").has_value());
  EXPECT_STREQ(DataTypeName(DataType::kInt64), "INT64");
  EXPECT_EQ(ElementSize(DataType::kFp16), 2u);
  EXPECT_EQ(ElementSize(DataType::kBytes), 0u);
}

TEST(TensorTest, SizesAndShapes) {
  Tensor t = Tensor::Of<float>("x", DataType::kFp32, {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.NumElements(), 6);
  EXPECT_TRUE(t.CheckSize().ok());
  t.data.pop_back();
  EXPECT_FALSE(t.CheckSize().ok());
  EXPECT_TRUE(ShapeMatches({5, 4}, {-1, 4}));
  EXPECT_FALSE(ShapeMatches({5, 3}, {-1, 4}));
  EXPECT_FALSE(ShapeMatches({4}, {-1, 4}));
  EXPECT_EQ(ShapeString({-1, 4}), "[-1,4]");
  Tensor huge{"h", DataType::kFp32, {int64_t{1} << 40, int64_t{1} << 40}, ""};
  EXPECT_EQ(huge.NumElements(), -1);  // overflow is refused, not wrapped
}

TEST(TensorTest, BytesElements) {
  Tensor t = Tensor::FromStrings("s", {3}, {"a", "", "xyz"});
  auto got = t.Strings();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::vector<std::string>{"a", "", "xyz"}));
  t.data.resize(t.data.size() - 1);  // cut
  EXPECT_FALSE(t.Strings().ok());
  t = Tensor::FromStrings("s", {2}, {"a"});  // count differs from the shape
  EXPECT_FALSE(t.Strings().ok());
}

}  // namespace
}  // namespace lumen::models
