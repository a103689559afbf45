#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace moe::model {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("safetensors_") + info->test_suite_name() +
                                             "_" + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ASSERT_TRUE(fs::create_directories(dir_));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

using SafetensorsFileTest = TempDirTest;
using SafetensorsMalformedTest = TempDirTest;
using CheckpointTest = TempDirTest;
using WriteSafetensorsTest = TempDirTest;

std::string LengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A file built by hand: length prefix, header text, data bytes.
std::string RawFile(const std::string& header, const std::string& data) {
  return LengthPrefix(header.size()) + header + data;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

template <typename T>
TensorToWrite Tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     std::vector<T> values) {
  TensorToWrite t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.fill = [values = std::move(values)](void* out) {
    if (!values.empty()) std::memcpy(out, values.data(), values.size() * sizeof(T));
  };
  return t;
}

// A one-tensor F32 file holding `values` under `name`.
void WriteF32(const std::string& path, const std::string& name, std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  ASSERT_TRUE(WriteSafetensors(path, {Tensor(name, DType::kF32, {n}, std::move(values))}).ok());
}

void WriteF32Tensors(const std::string& path, const std::vector<std::string>& names) {
  std::vector<TensorToWrite> tensors;
  float v = 1;
  for (const auto& name : names) tensors.push_back(Tensor<float>(name, DType::kF32, {2}, {v, v}));
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
}

TEST(TensorEntryTest, NumElementsAndShapeString) {
  TensorEntry t;
  t.shape = {2048, 768};
  EXPECT_EQ(t.NumElements(), 2048 * 768);
  EXPECT_EQ(t.ShapeString(), "[2048, 768]");
  t.shape = {};
  EXPECT_EQ(t.NumElements(), 1);
  EXPECT_EQ(t.ShapeString(), "[]");
  t.shape = {3, 0, 5};
  EXPECT_EQ(t.NumElements(), 0);
  EXPECT_EQ(t.ShapeString(), "[3, 0, 5]");
}

TEST_F(SafetensorsFileTest, RoundTripAllDtypes) {
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4000, 0xbf80, 0x0000, 0x7f80, 0x1234};
  const std::vector<uint16_t> f16 = {0x3c00, 0x4000, 0xc000, 0x7bff};
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 1e-30f};
  const std::vector<int32_t> i32 = {-1, 0, 2147483647};
  const std::vector<int64_t> i64 = {-5, 1LL << 40};
  const std::vector<uint8_t> u8 = {1, 2, 255};
  const std::vector<float> scalar = {42.0f};
  std::vector<TensorToWrite> tensors = {
      Tensor("model.embed", DType::kBF16, {2, 3}, bf16),
      Tensor("half", DType::kF16, {4}, f16),
      Tensor("a.f32", DType::kF32, {2, 2}, f32),
      Tensor("ints", DType::kI32, {3}, i32),
      Tensor("empty", DType::kBF16, {0, 5}, std::vector<uint16_t>{}),
      Tensor("scalar", DType::kF32, {}, scalar),
      Tensor("longs", DType::kI64, {2, 1}, i64),
      Tensor("bytes", DType::kU8, {3}, u8),
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "héllo"}};
  const std::string path = Path("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // The header length is a multiple of 8, and the file is exactly prefix + header + data.
  const std::string raw = ReadAll(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ(header_len % 8, 0u);
  const size_t data_bytes = 12 + 8 + 16 + 12 + 0 + 4 + 16 + 3;
  EXPECT_EQ(raw.size(), 8 + header_len + data_bytes);

  auto file_or = SafetensorsFile::Open(path);
  ASSERT_TRUE(file_or.ok()) << file_or.status();
  const SafetensorsFile& file = **file_or;
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.file_size(), raw.size());
  EXPECT_EQ(file.metadata(), metadata);

  // Written in order with sequential offsets, so file order is write order. "empty" and "scalar"
  // both start at the same offset; the zero-byte one sorts first.
  const std::vector<std::string> expected_order = {"model.embed", "half",   "a.f32", "ints",
                                                   "empty",       "scalar", "longs", "bytes"};
  ASSERT_EQ(file.tensors().size(), expected_order.size());
  for (size_t i = 0; i < expected_order.size(); ++i) {
    EXPECT_EQ(file.tensors()[i].name, expected_order[i]);
    EXPECT_EQ(file.tensors()[i].file, path);
  }

  const char* data_start = reinterpret_cast<const char*>(file.tensors()[0].data);
  auto check = [&](const std::string& name, DType dtype, std::vector<int64_t> shape,
                   const void* values, size_t bytes, size_t offset) {
    SCOPED_TRACE(name);
    const TensorEntry* t = file.Find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, dtype);
    EXPECT_EQ(t->shape, shape);
    EXPECT_EQ(t->num_bytes, bytes);
    EXPECT_EQ(reinterpret_cast<const char*>(t->data) - data_start, static_cast<ptrdiff_t>(offset));
    if (bytes > 0) {
      EXPECT_EQ(std::memcmp(t->data, values, bytes), 0);
    }
  };
  check("model.embed", DType::kBF16, {2, 3}, bf16.data(), 12, 0);
  check("half", DType::kF16, {4}, f16.data(), 8, 12);
  check("a.f32", DType::kF32, {2, 2}, f32.data(), 16, 20);
  check("ints", DType::kI32, {3}, i32.data(), 12, 36);
  check("empty", DType::kBF16, {0, 5}, nullptr, 0, 48);
  check("scalar", DType::kF32, {}, scalar.data(), 4, 48);
  check("longs", DType::kI64, {2, 1}, i64.data(), 16, 52);
  check("bytes", DType::kU8, {3}, u8.data(), 3, 68);
  EXPECT_EQ(file.Find("scalar")->NumElements(), 1);
  EXPECT_EQ(file.Find("scalar")->ShapeString(), "[]");
  EXPECT_EQ(file.Find("missing"), nullptr);
  EXPECT_EQ(file.Find("model"), nullptr);
}

TEST_F(WriteSafetensorsTest, HeaderIsExactJsonInGivenOrderPaddedWithSpaces) {
  const std::string path = Path("x.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {Tensor<float>("z", DType::kF32, {2}, {1, 2}),
                                      Tensor<uint16_t>("a", DType::kBF16, {1, 1}, {7})})
                  .ok());
  const std::string expected_json = R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("a":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}})";
  std::string header = expected_json;
  header.append((8 - header.size() % 8) % 8, ' ');
  const float z[2] = {1, 2};
  const uint16_t a = 7;
  const std::string expected = LengthPrefix(header.size()) + header +
                               std::string(reinterpret_cast<const char*>(z), 8) +
                               std::string(reinterpret_cast<const char*>(&a), 2);
  EXPECT_EQ(ReadAll(path), expected);
}

TEST_F(WriteSafetensorsTest, MetadataComesFirstAndEmptyFileIsValid) {
  const std::string path = Path("meta.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {}, {{"k", "v"}}).ok());
  std::string header = R"({"__metadata__":{"k":"v"}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(ReadAll(path), LengthPrefix(header.size()) + header);

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"k", "v"}}));

  const std::string bare = Path("bare.safetensors");
  ASSERT_TRUE(WriteSafetensors(bare, {}).ok());
  EXPECT_EQ(ReadAll(bare), LengthPrefix(8) + "{}      ");
}

TEST_F(WriteSafetensorsTest, OverwritesExistingFile) {
  const std::string path = Path("w.safetensors");
  WriteF32(path, "old", {1, 2, 3});
  WriteF32(path, "new", {4});
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 1u);
  EXPECT_EQ((*file)->tensors()[0].name, "new");
  EXPECT_EQ(*static_cast<const float*>((*file)->tensors()[0].data), 4.0f);
}

TEST_F(WriteSafetensorsTest, RejectsBadInputAndLeavesNoFile) {
  const std::string path = Path("out.safetensors");
  struct Case {
    std::vector<TensorToWrite> tensors;
    std::string tensor_name;
  };
  TensorToWrite no_fill;
  no_fill.name = "nofill";
  no_fill.dtype = DType::kF32;
  no_fill.shape = {2};
  std::vector<Case> cases;
  cases.push_back(
      {{Tensor<float>("dup", DType::kF32, {1}, {1}), Tensor<float>("dup", DType::kF32, {1}, {2})},
       "dup"});
  cases.push_back({{Tensor<float>("__metadata__", DType::kF32, {1}, {1})}, "__metadata__"});
  cases.push_back({{Tensor<float>("neg", DType::kF32, {2, -1}, {})}, "neg"});
  cases.push_back({{Tensor<float>("huge", DType::kF32, {1LL << 62, 8}, {})}, "huge"});
  cases.push_back({{no_fill}, "nofill"});
  cases.push_back({{Tensor<uint8_t>("latin1 \xe9t\xe9", DType::kU8, {1}, {1})}, "latin1"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tensor_name);
    const Status s = WriteSafetensors(path, c.tensors);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(StatusMessage(s).find(path), std::string::npos) << s;
    EXPECT_NE(StatusMessage(s).find(c.tensor_name), std::string::npos) << s;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }

  const std::string unwritable = Path("no_such_dir/out.safetensors");
  const Status s = WriteSafetensors(unwritable, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(StatusMessage(s).find(unwritable), std::string::npos) << s;
}

TEST_F(SafetensorsFileTest, HandCraftedFileParses) {
  // Entries out of offset order, a gap between them, metadata last, and header padding.
  const std::string header = R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},)"
                             R"( "a" : {"shape":[3],"dtype":"U8","data_offsets":[0,3]},)"
                             R"("__metadata__":{"format":"pt"}}    )";
  std::string data = {1, 2, 3, 0, 0, 0, 0, 0};
  const int32_t b[2] = {-7, 123456};
  data.append(reinterpret_cast<const char*>(b), sizeof(b));
  const std::string path = Path("hand.safetensors");
  WriteBytes(path, RawFile(header, data));

  auto file_or = SafetensorsFile::Open(path);
  ASSERT_TRUE(file_or.ok()) << file_or.status();
  const SafetensorsFile& file = **file_or;
  EXPECT_EQ(file.file_size(), 8 + header.size() + 16);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(file.tensors().size(), 2u);

  const TensorEntry& a = file.tensors()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::kU8);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.num_bytes, 3u);
  EXPECT_EQ(std::string(static_cast<const char*>(a.data), 3), std::string("\x01\x02\x03"));

  const TensorEntry& bt = file.tensors()[1];
  EXPECT_EQ(bt.name, "b");
  EXPECT_EQ(bt.dtype, DType::kI32);
  EXPECT_EQ(bt.num_bytes, 8u);
  EXPECT_EQ(static_cast<const char*>(bt.data) - static_cast<const char*>(a.data), 8);
  // This header is not padded to a multiple of 8, so the data may be unaligned.
  int32_t b_read[2];
  std::memcpy(b_read, bt.data, sizeof(b_read));
  EXPECT_EQ(b_read[0], -7);
  EXPECT_EQ(b_read[1], 123456);
  EXPECT_EQ(file.Find("b"), &bt);
  EXPECT_EQ(file.Find("a"), &a);
}

TEST_F(SafetensorsFileTest, EmptyDataBufferAndZeroSizeTensorsAreFine) {
  // Zero-size tensors sharing an offset, including one inside a non-empty tensor, own no bytes.
  const std::string header = R"({"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("e2":{"dtype":"BF16","shape":[4,0],"data_offsets":[0,0]}})";
  const std::string path = Path("empty.safetensors");
  WriteBytes(path, RawFile(header, ""));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 2u);
  EXPECT_EQ((*file)->tensors()[0].name, "e1");
  EXPECT_EQ((*file)->tensors()[1].name, "e2");
  EXPECT_EQ((*file)->tensors()[1].num_bytes, 0u);

  const std::string inside_header = R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                    R"("z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})";
  const std::string inside = Path("inside.safetensors");
  WriteBytes(inside, RawFile(inside_header, "abcd"));
  auto inside_file = SafetensorsFile::Open(inside);
  ASSERT_TRUE(inside_file.ok()) << inside_file.status();
  EXPECT_EQ((*inside_file)->tensors().size(), 2u);
}

TEST_F(SafetensorsFileTest, MissingFileAndDirectory) {
  const std::string missing = Path("nope.safetensors");
  auto file = SafetensorsFile::Open(missing);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound) << file.status();
  EXPECT_NE(StatusMessage(file.status()).find(missing), std::string::npos);

  auto dir = SafetensorsFile::Open(dir_.string());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(StatusMessage(dir.status()).find(dir_.string()), std::string::npos);
}

struct MalformedCase {
  std::string label;  // also the file name stem
  std::string bytes;
  absl::StatusCode code;
  std::vector<std::string> substrings;  // besides the file name
};

std::vector<MalformedCase> MalformedCases() {
  using C = absl::StatusCode;
  const auto ok_tensor = [](const std::string& name, uint64_t begin) {
    return "\"" + name + R"(":{"dtype":"U8","shape":[4],"data_offsets":[)" + std::to_string(begin) +
           "," + std::to_string(begin + 4) + "]}";
  };
  const auto with_entry = [](const std::string& name, const std::string& body,
                             const std::string& data) {
    return RawFile("{\"" + name + "\":" + body + "}", data);
  };
  const std::string d16(16, 'x');
  std::vector<MalformedCase> cases = {
      {"empty_file", "", C::kDataLoss, {"truncated"}},
      {"five_bytes", std::string(5, '\0'), C::kDataLoss, {"truncated"}},
      {"header_past_eof", LengthPrefix(100) + "{}", C::kDataLoss, {"truncated", "100"}},
      {"header_one_past_eof", LengthPrefix(3) + "{}", C::kDataLoss, {"truncated"}},
      {"header_absurd", LengthPrefix(uint64_t{1} << 63) + "{}", C::kDataLoss, {"limit"}},
      {"header_just_over_limit",
       LengthPrefix((uint64_t{100} << 20) + 1) + "{}",
       C::kDataLoss,
       {"limit"}},
      {"bad_json", RawFile(R"({"a":)", ""), C::kInvalidArgument, {"bad JSON", "parse error"}},
      {"empty_header", RawFile("", ""), C::kInvalidArgument, {"bad JSON"}},
      {"bad_utf8", RawFile("{\"a\xff\":1}", ""), C::kInvalidArgument, {"bad JSON"}},
      {"nul_in_header", RawFile(std::string("{}\0", 3), ""), C::kInvalidArgument, {"NUL"}},
      {"nul_then_entry",
       RawFile(std::string("{}\0{\"w\":5}", 11), ""),
       C::kInvalidArgument,
       {"offset 2"}},
      {"header_array", RawFile("[1,2]", ""), C::kInvalidArgument, {"not a JSON object"}},
      {"header_string", RawFile("\"x\"", ""), C::kInvalidArgument, {"not a JSON object"}},
      {"entry_not_object",
       with_entry("w.num", "5", ""),
       C::kInvalidArgument,
       {"'w.num'", "not a JSON object"}},
      {"entry_array", with_entry("w.arr", "[]", ""), C::kInvalidArgument, {"'w.arr'"}},
      {"missing_dtype",
       with_entry("w.nodt", R"({"shape":[4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.nodt'", "missing 'dtype'"}},
      {"dtype_not_string",
       with_entry("w.dtnum", R"({"dtype":5,"shape":[4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.dtnum'", "'dtype'"}},
      {"unknown_dtype",
       with_entry("w.f8", R"({"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.f8'", "F8_E4M3"}},
      {"lowercase_dtype",
       with_entry("w.lc", R"({"dtype":"u8","shape":[4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.lc'", "'u8'"}},
      {"missing_shape",
       with_entry("w.nosh", R"({"dtype":"U8","data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.nosh'", "missing 'shape'"}},
      {"shape_not_array",
       with_entry("w.shnum", R"({"dtype":"U8","shape":4,"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.shnum'", "'shape'"}},
      {"shape_float",
       with_entry("w.shf", R"({"dtype":"U8","shape":[4.0],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.shf'", "'shape'"}},
      {"shape_string",
       with_entry("w.shs", R"({"dtype":"U8","shape":["4"],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.shs'", "'shape'"}},
      {"negative_dim",
       with_entry("w.neg", R"({"dtype":"U8","shape":[-4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.neg'", "negative dimension -4"}},
      {"dim_over_int64",
       with_entry("w.big", R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,4]})",
                  "abcd"),
       C::kInvalidArgument,
       {"'w.big'", "18446744073709551615"}},
      {"shape_product_overflow",
       with_entry("w.ovf",
                  R"({"dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,4]})",
                  "abcd"),
       C::kInvalidArgument,
       {"'w.ovf'", "int64"}},
      {"shape_bytes_overflow",
       with_entry("w.bovf", R"({"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,4]})",
                  "abcd"),
       C::kInvalidArgument,
       {"'w.bovf'", "too large"}},
      {"missing_offsets",
       with_entry("w.nooff", R"({"dtype":"U8","shape":[4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.nooff'", "missing 'data_offsets'"}},
      {"offsets_not_array",
       with_entry("w.offnum", R"({"dtype":"U8","shape":[4],"data_offsets":4})", "abcd"),
       C::kInvalidArgument,
       {"'w.offnum'", "'data_offsets'"}},
      {"offsets_one",
       with_entry("w.off1", R"({"dtype":"U8","shape":[4],"data_offsets":[4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.off1'", "'data_offsets'"}},
      {"offsets_three",
       with_entry("w.off3", R"({"dtype":"U8","shape":[4],"data_offsets":[0,4,8]})", "abcd"),
       C::kInvalidArgument,
       {"'w.off3'", "'data_offsets'"}},
      {"offsets_negative",
       with_entry("w.offneg", R"({"dtype":"U8","shape":[4],"data_offsets":[-4,0]})", "abcd"),
       C::kInvalidArgument,
       {"'w.offneg'", "non-negative"}},
      {"offsets_float",
       with_entry("w.offf", R"({"dtype":"U8","shape":[4],"data_offsets":[0,4.0]})", "abcd"),
       C::kInvalidArgument,
       {"'w.offf'", "non-negative integers"}},
      {"offsets_string",
       with_entry("w.offs", R"({"dtype":"U8","shape":[4],"data_offsets":["0","4"]})", "abcd"),
       C::kInvalidArgument,
       {"'w.offs'", "non-negative integers"}},
      {"offsets_reversed",
       with_entry("w.rev", R"({"dtype":"U8","shape":[4],"data_offsets":[4,0]})", "abcd"),
       C::kInvalidArgument,
       {"'w.rev'", "begin 4 is past end 0"}},
      {"offsets_past_data",
       with_entry("w.past", R"({"dtype":"U8","shape":[4],"data_offsets":[2,6]})", "abcd"),
       C::kDataLoss,
       {"'w.past'", "truncated", "offset 6", "has 4 bytes"}},
      {"offsets_huge",
       with_entry("w.huge",
                  R"({"dtype":"U8","shape":[0],)"
                  R"("data_offsets":[18446744073709551615,18446744073709551615]})",
                  "abcd"),
       C::kDataLoss,
       {"'w.huge'", "truncated"}},
      {"data_truncated",
       with_entry("w.trunc", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", "abcd"),
       C::kDataLoss,
       {"'w.trunc'", "truncated"}},
      {"size_mismatch",
       with_entry("w.size", R"({"dtype":"BF16","shape":[4],"data_offsets":[0,4]})", "abcd"),
       C::kInvalidArgument,
       {"'w.size'", "span 4 bytes", "needs 8"}},
      {"overlap",
       RawFile("{" + ok_tensor("w.first", 0) + "," + ok_tensor("w.second", 2) + "}", d16),
       C::kInvalidArgument,
       {"'w.second'", "overlaps", "'w.first'"}},
      {"overlap_identical",
       RawFile("{" + ok_tensor("w.p", 4) + "," + ok_tensor("w.q", 4) + "}", d16),
       C::kInvalidArgument,
       {"'w.q'", "overlaps", "'w.p'"}},
      {"duplicate_name",
       RawFile("{" + ok_tensor("w.dup", 0) + "," + ok_tensor("w.dup", 4) + "}", d16),
       C::kInvalidArgument,
       {"'w.dup'", "twice"}},
      {"metadata_not_object",
       RawFile(R"({"__metadata__":["a"]})", ""),
       C::kInvalidArgument,
       {"'__metadata__'", "not an object"}},
      {"metadata_value_not_string",
       RawFile(R"({"__metadata__":{"epochs":3}})", ""),
       C::kInvalidArgument,
       {"'epochs'", "not a string"}},
  };
  return cases;
}

TEST_F(SafetensorsMalformedTest, EveryMalformedInputIsAnErrorNamingFileAndTensor) {
  for (const MalformedCase& c : MalformedCases()) {
    SCOPED_TRACE(c.label);
    const std::string file_name = c.label + ".safetensors";
    const std::string path = Path(file_name);
    WriteBytes(path, c.bytes);
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    const std::string message = StatusMessage(file.status());
    EXPECT_EQ(file.status().code(), c.code) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const std::string& s : c.substrings) {
      EXPECT_NE(message.find(s), std::string::npos) << "missing '" << s << "' in: " << message;
    }
  }
}

TEST_F(SafetensorsMalformedTest, EveryTruncationOfAValidFileIsDataLoss) {
  const std::string good = Path("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(good, {Tensor<uint16_t>("a", DType::kBF16, {3}, {1, 2, 3}),
                                      Tensor<uint8_t>("b", DType::kU8, {2}, {4, 5})})
                  .ok());
  const std::string bytes = ReadAll(good);
  const std::string path = Path("cut.safetensors");
  for (size_t len = 0; len < bytes.size(); ++len) {
    SCOPED_TRACE(len);
    WriteBytes(path, bytes.substr(0, len));
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
    EXPECT_NE(StatusMessage(file.status()).find("truncated"), std::string::npos) << file.status();
  }
}

TEST_F(SafetensorsMalformedTest, CorruptedBytesNeverCrash) {
  const std::string good = Path("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(good,
                               {Tensor<float>("w", DType::kF32, {2, 2}, {1, 2, 3, 4}),
                                Tensor<int32_t>("v", DType::kI32, {1}, {9})},
                               {{"k", "v"}})
                  .ok());
  const std::string bytes = ReadAll(good);
  const std::string path = Path("flip.safetensors");
  int ok_count = 0;
  const size_t header_end = bytes.size() - 20;
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (const char replacement : {'\0', '9', '"', '[', '-', '\xff'}) {
      if (bytes[pos] == replacement) continue;
      std::string corrupted = bytes;
      corrupted[pos] = replacement;
      WriteBytes(path, corrupted);
      auto file = SafetensorsFile::Open(path);
      if (file.ok()) {
        ++ok_count;
        // Touch every byte handed out, so an out-of-bounds span would fault under a sanitizer.
        size_t checksum = 0;
        for (const TensorEntry& t : (*file)->tensors()) {
          EXPECT_LE(t.num_bytes, 20u);
          for (size_t i = 0; i < t.num_bytes; ++i) {
            checksum += static_cast<const unsigned char*>(t.data)[i];
          }
        }
        EXPECT_LE(checksum, 20u * 255u);
      } else {
        EXPECT_NE(StatusMessage(file.status()).find(path), std::string::npos) << file.status();
      }
    }
  }
  // Some edits (inside a metadata string, or a padding space) are harmless.
  EXPECT_GT(ok_count, 0);
}

TEST_F(CheckpointTest, MissingDirectoryIsNotFound) {
  const std::string missing = Path("no_such_model");
  auto ckpt = Checkpoint::Open(missing);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(StatusMessage(ckpt.status()).find(missing), std::string::npos) << ckpt.status();
}

TEST_F(CheckpointTest, DirectoryWithoutSafetensorsIsNotFound) {
  WriteBytes(Path("config.json"), "{}");
  auto ckpt = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(StatusMessage(ckpt.status()).find(dir_.string()), std::string::npos) << ckpt.status();
}

TEST_F(CheckpointTest, PathThatIsAFileIsAnError) {
  const std::string file = Path("model.safetensors");
  WriteF32(file, "a", {1});
  auto ckpt = Checkpoint::Open(file);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(StatusMessage(ckpt.status()).find(file), std::string::npos) << ckpt.status();
}

TEST_F(CheckpointTest, WithoutIndexOpensEverySafetensorsFile) {
  WriteF32(Path("b.safetensors"), "layers.1.w", {3, 4, 5});
  ASSERT_TRUE(WriteSafetensors(Path("a.safetensors"),
                               {Tensor<float>("layers.0.w", DType::kF32, {2}, {1, 2}),
                                Tensor<uint16_t>("embed", DType::kBF16, {2, 2}, {1, 2, 3, 4})})
                  .ok());
  WriteBytes(Path("config.json"), "{}");
  WriteBytes(Path("notes.safetensors.bak"), "garbage");

  auto ckpt_or = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(ckpt_or.ok()) << ckpt_or.status();
  const Checkpoint& ckpt = **ckpt_or;
  EXPECT_EQ(ckpt.num_tensors(), 3u);
  EXPECT_EQ(ckpt.Names(), (std::vector<std::string>{"embed", "layers.0.w", "layers.1.w"}));
  EXPECT_EQ(ckpt.TotalBytes(), 8u + 8u + 12u);
  const TensorEntry* w1 = ckpt.Find("layers.1.w");
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w1->file, Path("b.safetensors"));
  EXPECT_EQ(static_cast<const float*>(w1->data)[2], 5.0f);
  ASSERT_NE(ckpt.Find("embed"), nullptr);
  EXPECT_EQ(ckpt.Find("embed")->file, Path("a.safetensors"));
  EXPECT_EQ(ckpt.Find("layers"), nullptr);
}

TEST_F(CheckpointTest, WithoutIndexDuplicateAcrossFilesIsAnError) {
  WriteF32(Path("a.safetensors"), "shared.w", {1});
  WriteF32(Path("b.safetensors"), "shared.w", {2});
  auto ckpt = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  const std::string message = StatusMessage(ckpt.status());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(message.find("shared.w"), std::string::npos) << message;
  EXPECT_NE(message.find(Path("a.safetensors")), std::string::npos) << message;
  EXPECT_NE(message.find(Path("b.safetensors")), std::string::npos) << message;
}

TEST_F(CheckpointTest, WithoutIndexMalformedFileNamesIt) {
  WriteF32(Path("a.safetensors"), "x", {1});
  WriteBytes(Path("b.safetensors"), "tiny");
  auto ckpt = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(StatusMessage(ckpt.status()).find(Path("b.safetensors")), std::string::npos)
      << ckpt.status();
}

constexpr char kShard1[] = "model-00001-of-00002.safetensors";
constexpr char kShard2[] = "model-00002-of-00002.safetensors";

std::string IndexJson(const std::map<std::string, std::string>& weight_map) {
  std::string out = R"({"metadata":{"total_size":28},"weight_map":{)";
  bool first = true;
  for (const auto& [name, shard] : weight_map) {
    if (!first) out += ",";
    first = false;
    out += "\"" + name + "\":\"" + shard + "\"";
  }
  return out + "}}";
}

class ShardedCheckpointTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    WriteF32Tensors(Path(kShard1), {"a", "b"});
    WriteF32Tensors(Path(kShard2), {"c"});
  }
  std::map<std::string, std::string> GoodMap() const {
    return {{"a", kShard1}, {"b", kShard1}, {"c", kShard2}};
  }
  void WriteIndex(const std::string& text) {
    WriteBytes(Path("model.safetensors.index.json"), text);
  }
  // Opens the checkpoint, expecting failure with `code` and every substring in the message.
  void ExpectError(absl::StatusCode code, const std::vector<std::string>& substrings) {
    auto ckpt = Checkpoint::Open(dir_.string());
    ASSERT_FALSE(ckpt.ok());
    const std::string message = StatusMessage(ckpt.status());
    EXPECT_EQ(ckpt.status().code(), code) << message;
    for (const std::string& s : substrings) {
      EXPECT_NE(message.find(s), std::string::npos) << "missing '" << s << "' in: " << message;
    }
  }
};

TEST_F(ShardedCheckpointTest, GoodIndex) {
  WriteIndex(IndexJson(GoodMap()));
  // Files the index does not list are ignored.
  WriteF32(Path("stray.safetensors"), "a", {9});
  auto ckpt_or = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(ckpt_or.ok()) << ckpt_or.status();
  const Checkpoint& ckpt = **ckpt_or;
  EXPECT_EQ(ckpt.num_tensors(), 3u);
  EXPECT_EQ(ckpt.Names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.TotalBytes(), 24u);
  ASSERT_NE(ckpt.Find("a"), nullptr);
  EXPECT_EQ(ckpt.Find("a")->file, Path(kShard1));
  EXPECT_EQ(static_cast<const float*>(ckpt.Find("a")->data)[0], 1.0f);
  ASSERT_NE(ckpt.Find("c"), nullptr);
  EXPECT_EQ(ckpt.Find("c")->file, Path(kShard2));
  EXPECT_EQ(ckpt.Find("c")->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(ckpt.Find("d"), nullptr);
}

TEST_F(ShardedCheckpointTest, MissingShard) {
  auto map = GoodMap();
  map["c"] = "model-00003-of-00002.safetensors";
  WriteIndex(IndexJson(map));
  fs::remove(Path(kShard2));
  ExpectError(absl::StatusCode::kNotFound,
              {"model.safetensors.index.json", "model-00003-of-00002.safetensors"});
}

TEST_F(ShardedCheckpointTest, MappedTensorAbsentFromItsShard) {
  auto map = GoodMap();
  map["ghost"] = kShard2;
  WriteIndex(IndexJson(map));
  ExpectError(absl::StatusCode::kInvalidArgument, {"'ghost'", kShard2, "does not contain"});
}

TEST_F(ShardedCheckpointTest, ShardTensorNotInIndex) {
  auto map = GoodMap();
  map.erase("b");
  WriteIndex(IndexJson(map));
  ExpectError(absl::StatusCode::kInvalidArgument, {"'b'", kShard1, "not listed"});
}

TEST_F(ShardedCheckpointTest, ShardTensorMappedToAnotherShard) {
  // "b" lives in shard 1 but the index says shard 2.
  auto map = GoodMap();
  map["b"] = kShard2;
  WriteIndex(IndexJson(map));
  ExpectError(absl::StatusCode::kInvalidArgument,
              {Path(kShard1) + ": tensor 'b'", "maps it to shard '" + std::string(kShard2) + "'"});
}

TEST_F(ShardedCheckpointTest, SameTensorInTwoShards) {
  WriteF32Tensors(Path(kShard2), {"c", "a"});
  WriteIndex(IndexJson(GoodMap()));
  ExpectError(absl::StatusCode::kInvalidArgument, {"'a'", "both", Path(kShard1), Path(kShard2)});
}

TEST_F(ShardedCheckpointTest, ShardNamesMustBePlainFileNames) {
  for (const std::string shard :
       {"../model-00001-of-00002.safetensors", "sub/model-00001-of-00002.safetensors", "..", ".",
        "", "/etc/passwd"}) {
    SCOPED_TRACE(shard);
    auto map = GoodMap();
    map["a"] = shard;
    WriteIndex(IndexJson(map));
    ExpectError(absl::StatusCode::kInvalidArgument, {"model.safetensors.index.json", "'a'"});
  }
  // An embedded NUL would otherwise silently open a different file.
  WriteIndex(R"({"weight_map":{"a":"model-00001-of-00002.safetensors\u0000x"}})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"'a'", "plain file name"});
}

TEST_F(ShardedCheckpointTest, MalformedIndex) {
  const std::string index = "model.safetensors.index.json";
  WriteIndex(R"({"weight_map":{"a":)");
  ExpectError(absl::StatusCode::kInvalidArgument, {index, "bad JSON"});
  WriteIndex("[]");
  ExpectError(absl::StatusCode::kInvalidArgument, {index, "not a JSON object"});
  WriteIndex(R"({"metadata":{}})");
  ExpectError(absl::StatusCode::kInvalidArgument, {index, "missing 'weight_map'"});
  WriteIndex(R"({"weight_map":[]})");
  ExpectError(absl::StatusCode::kInvalidArgument, {index, "'weight_map' is not an object"});
  WriteIndex(R"({"weight_map":{"a":1}})");
  ExpectError(absl::StatusCode::kInvalidArgument, {index, "'a'", "not a string"});
}

TEST_F(ShardedCheckpointTest, MalformedShardNamesIt) {
  WriteIndex(IndexJson(GoodMap()));
  WriteBytes(Path(kShard2), RawFile(R"({"c":{"dtype":"F32","shape":[2]}})", "12345678"));
  ExpectError(absl::StatusCode::kInvalidArgument, {Path(kShard2), "'c'", "data_offsets"});
}

}  // namespace
}  // namespace moe::model
