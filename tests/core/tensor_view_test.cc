#include "core/tensor_view.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "core/bf16.h"

namespace moe {
namespace {

constexpr int64_t kRows = 5;
constexpr int64_t kCols = 6;
constexpr int64_t kStride = 8;

// A 5 x 6 float matrix stored with row stride 8; element (r, c) holds r * 100 + c and the
// padding holds -1.
class TensorViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    buffer_.assign(kRows * kStride, -1.0f);
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < kCols; ++c)
        buffer_[r * kStride + c] = static_cast<float>(r * 100 + c);
    }
    view_ = TensorView{buffer_.data(), DType::kF32, kRows, kCols, kStride};
  }

  static float At(const TensorView& v, int64_t r, int64_t c) { return v.RowAs<float>(r)[c]; }

  std::vector<float> buffer_;
  TensorView view_;
};

void ExpectSameView(const TensorView& a, const TensorView& b) {
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.row_stride, b.row_stride);
}

TEST_F(TensorViewTest, DefaultIsEmpty) {
  const TensorView v;
  EXPECT_EQ(v.data, nullptr);
  EXPECT_EQ(v.rows, 0);
  EXPECT_EQ(v.cols, 0);
  EXPECT_EQ(v.SpanBytes(), 0u);
  EXPECT_TRUE(v.IsContiguous());
}

TEST_F(TensorViewTest, RowAddressingUsesStride) {
  for (int64_t r = 0; r < kRows; ++r) {
    EXPECT_EQ(view_.Row(r), static_cast<void*>(buffer_.data() + r * kStride));
    EXPECT_EQ(view_.RowAs<float>(r), buffer_.data() + r * kStride);
    for (int64_t c = 0; c < kCols; ++c) EXPECT_EQ(At(view_, r, c), r * 100 + c);
  }
  // Writes through a row pointer land in the buffer at r * stride + c.
  view_.RowAs<float>(3)[4] = 1234.0f;
  EXPECT_EQ(buffer_[3 * kStride + 4], 1234.0f);
}

TEST_F(TensorViewTest, RowAddressingScalesByElementSize) {
  alignas(8) unsigned char raw[1024] = {};
  struct Case {
    DType dtype;
    size_t size;
  };
  for (const Case& c : {Case{DType::kF32, 4}, Case{DType::kBF16, 2}, Case{DType::kF16, 2},
                        Case{DType::kI32, 4}, Case{DType::kI64, 8}, Case{DType::kU8, 1}}) {
    const TensorView v{raw, c.dtype, 4, 3, 10};
    EXPECT_EQ(v.ElementSize(), c.size);
    for (int64_t r = 0; r < 4; ++r) {
      EXPECT_EQ(static_cast<unsigned char*>(v.Row(r)), raw + r * 10 * c.size);
    }
    EXPECT_EQ(v.SpanBytes(), (3 * 10 + 3) * c.size);
  }
  // Typed access for bf16 rows.
  const TensorView bf{raw, DType::kBF16, 4, 3, 10};
  bf.RowAs<Bf16>(2)[1] = ToBf16(2.5f);
  EXPECT_EQ(ToFloat(reinterpret_cast<Bf16*>(raw)[2 * 10 + 1]), 2.5f);
}

TEST_F(TensorViewTest, ContiguousFactory) {
  std::vector<uint16_t> data(12);
  const TensorView v = TensorView::Contiguous(data.data(), DType::kBF16, 3, 4);
  EXPECT_EQ(v.data, data.data());
  EXPECT_EQ(v.dtype, DType::kBF16);
  EXPECT_EQ(v.rows, 3);
  EXPECT_EQ(v.cols, 4);
  EXPECT_EQ(v.row_stride, 4);
  EXPECT_TRUE(v.IsContiguous());
  EXPECT_EQ(v.SpanBytes(), 24u);
  EXPECT_EQ(v.Row(2), static_cast<void*>(data.data() + 8));
}

TEST_F(TensorViewTest, IsContiguous) {
  EXPECT_FALSE(view_.IsContiguous());                // stride 8 > 6 cols, 5 rows
  EXPECT_TRUE(view_.RowRange(2, 1).IsContiguous());  // one row is always contiguous
  EXPECT_TRUE(view_.RowRange(2, 0).IsContiguous());
  EXPECT_FALSE(view_.RowRange(2, 2).IsContiguous());
  EXPECT_FALSE(view_.ColRange(0, 6).IsContiguous());
  const TensorView full = TensorView{buffer_.data(), DType::kF32, kRows, kStride, kStride};
  EXPECT_TRUE(full.IsContiguous());
  EXPECT_FALSE(full.ColRange(0, 7).IsContiguous());
  EXPECT_TRUE(full.ColRange(0, 8).IsContiguous());
}

TEST_F(TensorViewTest, SpanBytes) {
  // From the first element to one past the last: 4 full strides plus the last row's 6 columns.
  EXPECT_EQ(view_.SpanBytes(), static_cast<size_t>((4 * kStride + kCols) * 4));
  EXPECT_EQ(view_.RowRange(1, 2).SpanBytes(), static_cast<size_t>((kStride + kCols) * 4));
  EXPECT_EQ(view_.RowRange(3, 1).SpanBytes(), static_cast<size_t>(kCols * 4));
  EXPECT_EQ(view_.RowRange(3, 0).SpanBytes(), 0u);
  EXPECT_EQ(view_.ColRange(2, 3).SpanBytes(), static_cast<size_t>((4 * kStride + 3) * 4));
  // A span never reaches past the buffer.
  EXPECT_LE(static_cast<const char*>(view_.ColRange(5, 1).data) + view_.ColRange(5, 1).SpanBytes(),
            reinterpret_cast<const char*>(buffer_.data() + buffer_.size()));
}

TEST_F(TensorViewTest, RowRange) {
  const TensorView sub = view_.RowRange(1, 3);
  EXPECT_EQ(sub.data, view_.Row(1));
  EXPECT_EQ(sub.rows, 3);
  EXPECT_EQ(sub.cols, kCols);
  EXPECT_EQ(sub.row_stride, kStride);
  EXPECT_EQ(sub.dtype, DType::kF32);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < kCols; ++c) EXPECT_EQ(At(sub, r, c), (r + 1) * 100 + c);
  }
  ExpectSameView(view_.RowRange(0, kRows), view_);
  // Empty ranges are allowed anywhere in [0, rows], including at the end.
  EXPECT_EQ(view_.RowRange(kRows, 0).rows, 0);
  EXPECT_EQ(view_.RowRange(0, 0).rows, 0);
}

TEST_F(TensorViewTest, ColRange) {
  const TensorView sub = view_.ColRange(2, 3);
  EXPECT_EQ(sub.data, static_cast<void*>(buffer_.data() + 2));
  EXPECT_EQ(sub.rows, kRows);
  EXPECT_EQ(sub.cols, 3);
  EXPECT_EQ(sub.row_stride, kStride);
  for (int64_t r = 0; r < kRows; ++r) {
    EXPECT_EQ(sub.Row(r), static_cast<void*>(buffer_.data() + r * kStride + 2));
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(At(sub, r, c), r * 100 + c + 2);
  }
  ExpectSameView(view_.ColRange(0, kCols), view_);
  EXPECT_EQ(view_.ColRange(kCols, 0).cols, 0);
}

TEST_F(TensorViewTest, RangesCompose) {
  // Row and column ranges commute.
  ExpectSameView(view_.RowRange(1, 3).ColRange(2, 3), view_.ColRange(2, 3).RowRange(1, 3));
  // Nested ranges add their offsets.
  ExpectSameView(view_.RowRange(1, 4).RowRange(2, 2), view_.RowRange(3, 2));
  ExpectSameView(view_.ColRange(1, 5).ColRange(2, 2), view_.ColRange(3, 2));
  const TensorView block = view_.RowRange(1, 4).ColRange(1, 4).RowRange(1, 2).ColRange(2, 2);
  EXPECT_EQ(block.rows, 2);
  EXPECT_EQ(block.cols, 2);
  EXPECT_EQ(block.row_stride, kStride);
  EXPECT_EQ(block.data, static_cast<void*>(buffer_.data() + 2 * kStride + 3));
  EXPECT_EQ(At(block, 0, 0), 203);
  EXPECT_EQ(At(block, 0, 1), 204);
  EXPECT_EQ(At(block, 1, 0), 303);
  EXPECT_EQ(At(block, 1, 1), 304);
  EXPECT_EQ(block.SpanBytes(), static_cast<size_t>((kStride + 2) * 4));
}

TEST(MatrixViewTest, TypedAccessWithStride) {
  std::vector<int32_t> data(3 * 5);
  std::iota(data.begin(), data.end(), 0);
  const MatrixView<int32_t> m{data.data(), 3, 4, 5};
  EXPECT_EQ(m.Row(2), data.data() + 10);
  EXPECT_EQ(m(0, 0), 0);
  EXPECT_EQ(m(1, 3), 8);
  EXPECT_EQ(m(2, 1), 11);
  m(2, 3) = -7;
  EXPECT_EQ(data[13], -7);
}

class TensorViewDeathTest : public TensorViewTest {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    TensorViewTest::SetUp();
  }
};

TEST_F(TensorViewDeathTest, RowRangeOutOfBounds) {
  EXPECT_DEATH(view_.RowRange(4, 2), "check failed.*rows \\[4, 6\\) of 5");
  EXPECT_DEATH(view_.RowRange(-1, 1), "rows \\[-1, 0\\) of 5");
  EXPECT_DEATH(view_.RowRange(0, -1), "rows \\[0, -1\\) of 5");
  EXPECT_DEATH(view_.RowRange(6, 0), "rows \\[6, 6\\) of 5");
  EXPECT_DEATH(view_.RowRange(1, 3).RowRange(1, 3), "rows \\[1, 4\\) of 3");
}

TEST_F(TensorViewDeathTest, ColRangeOutOfBounds) {
  EXPECT_DEATH(view_.ColRange(5, 2), "check failed.*cols \\[5, 7\\) of 6");
  EXPECT_DEATH(view_.ColRange(-1, 2), "cols \\[-1, 1\\) of 6");
  EXPECT_DEATH(view_.ColRange(0, 7), "cols \\[0, 7\\) of 6");
  EXPECT_DEATH(view_.ColRange(2, 3).ColRange(1, 3), "cols \\[1, 4\\) of 3");
}

}  // namespace
}  // namespace moe
