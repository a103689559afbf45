// Unit tests of the KServe tensor layer: BYTES framing (including truncated and overlong
// elements), raw vs typed decoding, and the element-count / byte-size checks that name the tensor.
#include "serving/kserve_tensor.h"

#include <gtest/gtest.h>

#include <cstring>

namespace moe::serving {
namespace {

std::string Raw(std::initializer_list<std::string> elements) {
  std::string raw;
  for (const std::string& e : elements) AppendBytesElement(e, &raw);
  return raw;
}

TEST(KServeTensorTest, BytesRoundTripIncludingEmptyAndBinaryElements) {
  const std::string binary("a\0b", 3);
  const std::string raw = Raw({"hello", "", binary});
  ASSERT_EQ(raw.size(), 4u + 5 + 4 + 0 + 4 + 3);
  EXPECT_EQ(raw.substr(0, 4), std::string("\x05\x00\x00\x00", 4)) << "little-endian length";
  auto parsed = DeserializeBytes(raw, 3, "t");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, (std::vector<std::string>{"hello", "", binary}));
}

TEST(KServeTensorTest, BytesEdgeCasesAreInvalidArgumentNamingTheTensor) {
  const std::string good = Raw({"abc"});
  // A length prefix cut short.
  for (size_t cut = 1; cut < 4; ++cut) {
    auto r = DeserializeBytes(good.substr(0, cut), 1, "text_input");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("text_input"), std::string::npos);
    EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  }
  // A second element whose prefix is truncated.
  auto two = DeserializeBytes(good + std::string("\x02\x00", 2), 2, "x");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("truncated"), std::string::npos);
  // A length beyond the data.
  auto over = DeserializeBytes(std::string("\x09\x00\x00\x00", 4) + "abc", 1, "x");
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("declares 9 bytes"), std::string::npos);
  // Huge declared length (would overflow a naive offset check).
  auto huge = DeserializeBytes(std::string("\xff\xff\xff\xff", 4) + "abc", 1, "x");
  EXPECT_FALSE(huge.ok());
  // Element count mismatches in both directions.
  EXPECT_FALSE(DeserializeBytes(Raw({"a", "b"}), 1, "x").ok());
  EXPECT_FALSE(DeserializeBytes(Raw({"a"}), 2, "x").ok());
  EXPECT_FALSE(DeserializeBytes("", 1, "x").ok());
  EXPECT_TRUE(DeserializeBytes("", 0, "x").ok());
}

inference::ModelInferRequest OneInput(const std::string& name, const std::string& type,
                                      std::vector<int64_t> shape) {
  inference::ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name(name);
  in->set_datatype(type);
  for (int64_t d : shape) in->add_shape(d);
  return r;
}

TEST(KServeTensorTest, RawAndTypedDecodeToTheSameValues) {
  const int32_t ids[] = {7, -3, 100000};
  auto raw = OneInput("input_ids", "INT32", {1, 3});
  raw.add_raw_input_contents(std::string(reinterpret_cast<const char*>(ids), sizeof(ids)));
  auto typed = OneInput("input_ids", "INT32", {1, 3});
  for (int32_t v : ids) typed.mutable_inputs(0)->mutable_contents()->add_int_contents(v);
  for (const auto* r : {&raw, &typed}) {
    ASSERT_TRUE(CheckInputEncoding(*r).ok());
    auto t = DecodeInput(*r, 0);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->ints, (std::vector<int64_t>{7, -3, 100000}));
    EXPECT_EQ(t->num_elements, 3);
  }
  const uint64_t seed = 0xfedcba9876543210ULL;
  auto u = OneInput("seed", "UINT64", {1});
  u.add_raw_input_contents(std::string(reinterpret_cast<const char*>(&seed), 8));
  auto ut = DecodeInput(u, 0);
  ASSERT_TRUE(ut.ok());
  EXPECT_EQ(ut->u64s, std::vector<uint64_t>{seed});
  auto b = OneInput("stream", "BOOL", {1, 1});
  b.add_raw_input_contents(std::string("\x01", 1));
  auto bt = DecodeInput(b, 0);
  ASSERT_TRUE(bt.ok());
  EXPECT_EQ(bt->ints, std::vector<int64_t>{1});
  auto s = OneInput("text_input", "BYTES", {1, 1});
  s.mutable_inputs(0)->mutable_contents()->add_bytes_contents("typed text");
  auto st = DecodeInput(s, 0);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->bytes, std::vector<std::string>{"typed text"});
}

TEST(KServeTensorTest, SizeAndEncodingErrorsNameTheTensor) {
  auto short_raw = OneInput("input_ids", "INT32", {1, 3});
  short_raw.add_raw_input_contents(std::string(8, '\0'));
  auto r = DecodeInput(short_raw, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'input_ids'"), std::string::npos);
  EXPECT_NE(r.status().message().find("need 12"), std::string::npos) << r.status().message();

  auto typed_count = OneInput("input_ids", "INT32", {2});
  typed_count.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
  r = DecodeInput(typed_count, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("int_contents"), std::string::npos);

  auto negative = OneInput("input_ids", "INT32", {-1});
  EXPECT_FALSE(DecodeInput(negative, 0).ok());
  auto unknown = OneInput("x", "COMPLEX", {1});
  EXPECT_FALSE(DecodeInput(unknown, 0).ok());
  auto huge = OneInput("x", "INT32", {1 << 30, 1 << 30});
  EXPECT_FALSE(DecodeInput(huge, 0).ok());

  // raw_input_contents must cover every input, and typed contents cannot be mixed in.
  auto mixed = OneInput("a", "INT32", {1});
  mixed.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
  mixed.add_raw_input_contents(std::string(4, '\0'));
  EXPECT_FALSE(CheckInputEncoding(mixed).ok());
  auto missing = OneInput("a", "INT32", {1});
  missing.add_inputs()->set_name("b");
  missing.add_raw_input_contents(std::string(4, '\0'));
  EXPECT_FALSE(CheckInputEncoding(missing).ok());
}

TEST(KServeTensorTest, OutputsAreRawInOrder) {
  inference::ModelInferResponse response;
  const int32_t ids[] = {1, 2, 3};
  AddInt32Output("output_ids", {1, 1, 3}, ids, &response);
  const std::string text = "hi";
  AddBytesOutput("text_output", {1, 1}, std::span<const std::string>(&text, 1), &response);
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.outputs(1).datatype(), "BYTES");
  const std::string* raw = FindRawOutput(response, "output_ids");
  ASSERT_NE(raw, nullptr);
  ASSERT_EQ(raw->size(), 12u);
  int32_t back[3];
  std::memcpy(back, raw->data(), 12);
  EXPECT_EQ(back[2], 3);
  auto parsed = DeserializeBytes(*FindRawOutput(response, "text_output"), 1, "text_output");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)[0], "hi");
}

}  // namespace
}  // namespace moe::serving
