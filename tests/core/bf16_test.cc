#include "core/bf16.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace moe {
namespace {

bool IsBf16NaN(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x007fu) != 0; }
bool IsBf16QuietNaN(uint16_t b) { return IsBf16NaN(b) && (b & 0x0040u) != 0; }
bool IsFp16NaN(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0; }
bool IsFp16QuietNaN(uint16_t h) { return IsFp16NaN(h) && (h & 0x0200u) != 0; }

uint16_t Bf16Of(uint32_t float_bits) { return FloatToBf16Bits(BitsToFloat(float_bits)); }
uint16_t Fp16Of(uint32_t float_bits) { return FloatToFp16Bits(BitsToFloat(float_bits)); }

// ---------------------------------------------------------------------------------------------
// Float <-> bits helpers

TEST(Bf16Test, FloatBitsRoundTrip) {
  EXPECT_EQ(FloatBits(1.0f), 0x3f800000u);
  EXPECT_EQ(FloatBits(-2.0f), 0xc0000000u);
  EXPECT_EQ(FloatBits(-0.0f), 0x80000000u);
  EXPECT_EQ(BitsToFloat(0x40490fdbu), 3.14159274101257324f);
  for (uint32_t u : {0u, 1u, 0x7f7fffffu, 0x80800000u, 0x12345678u, 0xdeadbeefu}) {
    EXPECT_EQ(FloatBits(BitsToFloat(u)), u);
  }
}

// ---------------------------------------------------------------------------------------------
// FloatToBf16Bits

TEST(Bf16Test, ExactValuesConvertExactly) {
  EXPECT_EQ(FloatToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16Bits(-1.0f), 0xbf80);
  EXPECT_EQ(FloatToBf16Bits(2.0f), 0x4000);
  EXPECT_EQ(FloatToBf16Bits(0.5f), 0x3f00);
  EXPECT_EQ(FloatToBf16Bits(1.5f), 0x3fc0);
  EXPECT_EQ(FloatToBf16Bits(-3.0f), 0xc040);
  EXPECT_EQ(FloatToBf16Bits(256.0f), 0x4380);
  EXPECT_EQ(Bf16BitsToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bf16BitsToFloat(0xc040), -3.0f);
  EXPECT_EQ(Bf16BitsToFloat(0x4049), 3.140625f);
}

TEST(Bf16Test, TiesRoundToEven) {
  // 1 + 2^-8 lies exactly between 0x3f80 (even) and 0x3f81 (odd): rounds down to even.
  EXPECT_EQ(Bf16Of(0x3f808000u), 0x3f80);
  // Exactly between 0x3f81 (odd) and 0x3f82 (even): rounds up to even.
  EXPECT_EQ(Bf16Of(0x3f818000u), 0x3f82);
  // Same for negative numbers (magnitude rounding).
  EXPECT_EQ(Bf16Of(0xbf808000u), 0xbf80);
  EXPECT_EQ(Bf16Of(0xbf818000u), 0xbf82);
  // A tie whose round-up carries into the exponent: 0x3fff (odd) -> 0x4000.
  EXPECT_EQ(Bf16Of(0x3fff8000u), 0x4000);
  // A tie with an even lower neighbour in a different binade stays put.
  EXPECT_EQ(Bf16Of(0x40008000u), 0x4000);
  EXPECT_EQ(FloatToBf16Bits(1.0f + 1.0f / 256.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16Bits(1.0f + 3.0f / 256.0f), 0x3f82);
}

TEST(Bf16Test, JustAboveAndBelowTies) {
  EXPECT_EQ(Bf16Of(0x3f808001u), 0x3f81);  // just above a tie with an even neighbour
  EXPECT_EQ(Bf16Of(0x3f807fffu), 0x3f80);  // just below
  EXPECT_EQ(Bf16Of(0x3f818001u), 0x3f82);
  EXPECT_EQ(Bf16Of(0x3f817fffu), 0x3f81);  // just below a tie with an odd neighbour
  EXPECT_EQ(Bf16Of(0xbf808001u), 0xbf81);
  EXPECT_EQ(Bf16Of(0xbf817fffu), 0xbf81);
  EXPECT_EQ(Bf16Of(0x3f80ffffu), 0x3f81);
  EXPECT_EQ(Bf16Of(0x3f800001u), 0x3f80);
}

TEST(Bf16Test, NaNStaysQuietNaN) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(IsBf16QuietNaN(FloatToBf16Bits(qnan)));
  EXPECT_EQ(FloatToBf16Bits(qnan) & 0x8000, FloatBits(qnan) >> 16 & 0x8000);
  // NaNs whose payload lives only in the low 16 bits: plain truncation would give infinity.
  EXPECT_EQ(Bf16Of(0x7f800001u), 0x7fc0);
  EXPECT_EQ(Bf16Of(0xff800001u), 0xffc0);
  EXPECT_EQ(Bf16Of(0x7f80ffffu), 0x7fc0);
  // A signalling NaN with a high payload is quietened and keeps its payload.
  EXPECT_EQ(Bf16Of(0x7f810000u), 0x7fc1);
  // Rounding never turns the all-ones NaN into something else (no carry into the sign).
  EXPECT_EQ(Bf16Of(0x7fffffffu), 0x7fff);
  EXPECT_EQ(Bf16Of(0xffffffffu), 0xffff);
  EXPECT_EQ(Bf16Of(0x7fc00000u), 0x7fc0);
  EXPECT_EQ(Bf16Of(0xffc00000u), 0xffc0);
  EXPECT_TRUE(std::isnan(RoundToBf16(qnan)));
}

TEST(Bf16Test, InfinitiesAndZeros) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FloatToBf16Bits(inf), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(-inf), 0xff80);
  EXPECT_EQ(FloatToBf16Bits(0.0f), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(-0.0f), 0x8000);
  EXPECT_EQ(Bf16BitsToFloat(0x7f80), inf);
  EXPECT_EQ(Bf16BitsToFloat(0xff80), -inf);
  EXPECT_TRUE(std::signbit(Bf16BitsToFloat(0x8000)));
  EXPECT_EQ(Bf16BitsToFloat(0x8000), 0.0f);
}

TEST(Bf16Test, Denormals) {
  EXPECT_EQ(Bf16Of(0x00000001u), 0x0000);  // smallest float denormal rounds to +0
  EXPECT_EQ(Bf16Of(0x80000001u), 0x8000);  // ... and keeps its sign
  EXPECT_EQ(Bf16Of(0x00010000u), 0x0001);  // smallest bf16 denormal is exact
  EXPECT_EQ(Bf16Of(0x00008000u), 0x0000);  // tie between 0 (even) and 0x0001
  EXPECT_EQ(Bf16Of(0x00008001u), 0x0001);
  EXPECT_EQ(Bf16Of(0x00018000u), 0x0002);  // tie between 0x0001 (odd) and 0x0002
  EXPECT_EQ(Bf16Of(0x00017fffu), 0x0001);
  EXPECT_EQ(Bf16Of(0x007f0000u), 0x007f);  // largest bf16 denormal
  EXPECT_EQ(Bf16Of(0x007fffffu), 0x0080);  // largest float denormal rounds up to the min normal
  EXPECT_EQ(Bf16Of(0x807fffffu), 0x8080);
  EXPECT_EQ(Bf16BitsToFloat(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(Bf16BitsToFloat(0x0080), std::numeric_limits<float>::min());
}

TEST(Bf16Test, OverflowToInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(Bf16Of(0x7f7f0000u), 0x7f7f);  // bf16 max finite is exact
  EXPECT_EQ(Bf16Of(0x7f7f7fffu), 0x7f7f);  // just below the tie with infinity
  EXPECT_EQ(Bf16Of(0x7f7f8000u), 0x7f80);  // tie: 0x7f7f is odd, so it rounds to inf
  EXPECT_EQ(Bf16Of(0xff7f8000u), 0xff80);
  EXPECT_EQ(RoundToBf16(std::numeric_limits<float>::max()), inf);
  EXPECT_EQ(Bf16BitsToFloat(0x7f7f), 3.38953139e38f);
}

TEST(Bf16Test, StructWrappers) {
  static_assert(sizeof(Bf16) == 2);
  static_assert(sizeof(Fp16) == 2);
  EXPECT_EQ(ToBf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(ToFloat(Bf16{0x4049}), 3.140625f);
  EXPECT_EQ(RoundToBf16(3.14159265f), 3.140625f);
  EXPECT_EQ(RoundToBf16(1.0f + 1.0f / 256.0f), 1.0f);
  EXPECT_EQ(RoundToBf16(-1.0f - 3.0f / 256.0f), -1.0f - 2.0f / 128.0f);
}

TEST(Bf16Test, EveryBf16PatternRoundTripsExhaustively) {
  int nan_patterns = 0;
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const float f = Bf16BitsToFloat(bits);
    ASSERT_EQ(FloatBits(f), b << 16);
    const uint16_t back = FloatToBf16Bits(f);
    if (IsBf16NaN(bits)) {
      ++nan_patterns;
      ASSERT_TRUE(std::isnan(f)) << std::hex << b;
      // NaNs come back as NaN of the same sign, quiet, payload kept apart from the quiet bit.
      ASSERT_EQ(back, bits | 0x0040u) << std::hex << b;
      ASSERT_TRUE(IsBf16QuietNaN(back)) << std::hex << b;
    } else {
      ASSERT_EQ(back, bits) << std::hex << b;
    }
  }
  EXPECT_EQ(nan_patterns, 2 * 127);
}

TEST(Bf16Test, RoundingMatchesNearestRepresentable) {
  // For random finite floats, the result is one of the two bf16 neighbours and the nearer one.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> dist;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t u = dist(rng);
    const float f = BitsToFloat(u);
    if (!std::isfinite(f)) continue;
    const uint16_t b = FloatToBf16Bits(f);
    const uint16_t lo = static_cast<uint16_t>(u >> 16);  // truncation (towards zero)
    const uint16_t hi = static_cast<uint16_t>(lo + 1);   // next magnitude up (may be inf)
    ASSERT_TRUE(b == lo || b == hi) << std::hex << u;
    const double err_lo = std::fabs(static_cast<double>(f) - Bf16BitsToFloat(lo));
    const double err_hi = std::fabs(static_cast<double>(f) - Bf16BitsToFloat(hi));
    if ((u & 0xffffu) == 0x8000u) {
      ASSERT_EQ(b & 1, 0) << std::hex << u;
    } else if ((u & 0xffffu) < 0x8000u) {
      ASSERT_EQ(b, lo) << std::hex << u << " err_lo=" << err_lo;
    } else {
      ASSERT_EQ(b, hi) << std::hex << u << " err_hi=" << err_hi;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fp16

TEST(Fp16Test, ToFloatKnownValues) {
  EXPECT_EQ(Fp16BitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(Fp16BitsToFloat(0xbc00), -1.0f);
  EXPECT_EQ(Fp16BitsToFloat(0x4000), 2.0f);
  EXPECT_EQ(Fp16BitsToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(Fp16BitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(Fp16BitsToFloat(0xfbff), -65504.0f);
  EXPECT_EQ(Fp16BitsToFloat(0x0400), std::ldexp(1.0f, -14));  // min normal
  EXPECT_EQ(Fp16BitsToFloat(0x0001), std::ldexp(1.0f, -24));  // min subnormal
  EXPECT_EQ(Fp16BitsToFloat(0x0002), std::ldexp(1.0f, -23));
  EXPECT_EQ(Fp16BitsToFloat(0x0003), std::ldexp(3.0f, -24));
  EXPECT_EQ(Fp16BitsToFloat(0x0200), std::ldexp(1.0f, -15));
  EXPECT_EQ(Fp16BitsToFloat(0x03ff), std::ldexp(1023.0f, -24));  // max subnormal
  EXPECT_EQ(Fp16BitsToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(FloatBits(Fp16BitsToFloat(0x0000)), 0x00000000u);
  EXPECT_EQ(FloatBits(Fp16BitsToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(Fp16BitsToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(Fp16BitsToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Fp16BitsToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(Fp16BitsToFloat(0x7c01)));
  EXPECT_TRUE(std::isnan(Fp16BitsToFloat(0xfe00)));
  EXPECT_TRUE(std::signbit(Fp16BitsToFloat(0xfe00)));
}

TEST(Fp16Test, FromFloatKnownValues) {
  EXPECT_EQ(FloatToFp16Bits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToFp16Bits(-1.0f), 0xbc00);
  EXPECT_EQ(FloatToFp16Bits(0.5f), 0x3800);
  EXPECT_EQ(FloatToFp16Bits(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(FloatToFp16Bits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToFp16Bits(0.0f), 0x0000);
  EXPECT_EQ(FloatToFp16Bits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToFp16Bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToFp16Bits(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(FloatToFp16Bits(3.14159265f), 0x4248);
}

TEST(Fp16Test, NaNStaysQuietNaN) {
  EXPECT_EQ(FloatToFp16Bits(std::numeric_limits<float>::quiet_NaN()) & 0x7fff, 0x7e00);
  EXPECT_EQ(Fp16Of(0x7f800001u), 0x7e00);  // signalling, payload below fp16 precision
  EXPECT_EQ(Fp16Of(0xff800001u), 0xfe00);
  EXPECT_EQ(Fp16Of(0x7fffffffu), 0x7e00);
  EXPECT_EQ(Fp16Of(0xffc00000u), 0xfe00);
  EXPECT_TRUE(IsFp16QuietNaN(Fp16Of(0x7fa00000u)));
}

TEST(Fp16Test, OverflowToInfinity) {
  // 65520 is the midpoint between 65504 (0x7bff, odd) and 65536 (would be 0x7c00): ties to inf.
  EXPECT_EQ(FloatToFp16Bits(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToFp16Bits(-65520.0f), 0xfc00);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(-65520.0f, 0.0f)), 0xfbff);
  EXPECT_EQ(FloatToFp16Bits(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToFp16Bits(65536.0f), 0x7c00);
  EXPECT_EQ(FloatToFp16Bits(1e10f), 0x7c00);
  EXPECT_EQ(FloatToFp16Bits(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(FloatToFp16Bits(-std::numeric_limits<float>::max()), 0xfc00);
}

TEST(Fp16Test, NormalTiesRoundToEven) {
  const float ulp = std::ldexp(1.0f, -10);                 // fp16 ulp at 1.0
  EXPECT_EQ(FloatToFp16Bits(1.0f + ulp / 2), 0x3c00);      // tie, 0x3c00 even
  EXPECT_EQ(FloatToFp16Bits(1.0f + 3 * ulp / 2), 0x3c02);  // tie, 0x3c01 odd -> up
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(1.0f + ulp / 2, 2.0f)), 0x3c01);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(1.0f + ulp / 2, 0.0f)), 0x3c00);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(1.0f + 3 * ulp / 2, 0.0f)), 0x3c01);
  EXPECT_EQ(FloatToFp16Bits(-(1.0f + 3 * ulp / 2)), 0xbc02);
  // Mantissa carry into the exponent: 0x3bff (odd) + tie -> 0x3c00.
  EXPECT_EQ(Fp16Of(0x3f7ff000u), 0x3c00);
  EXPECT_EQ(Fp16Of(0x3f7fefffu), 0x3bff);
  // Just above / below a tie in raw float bits (rem = 0x1000 +- 1).
  EXPECT_EQ(Fp16Of(0x3f801001u), 0x3c01);
  EXPECT_EQ(Fp16Of(0x3f800fffu), 0x3c00);
}

TEST(Fp16Test, SubnormalsAndUnderflow) {
  const float tiny = std::ldexp(1.0f, -24);  // fp16 min subnormal
  EXPECT_EQ(FloatToFp16Bits(tiny), 0x0001);
  EXPECT_EQ(FloatToFp16Bits(-tiny), 0x8001);
  EXPECT_EQ(FloatToFp16Bits(tiny / 2), 0x0000);  // tie between 0 (even) and 0x0001
  EXPECT_EQ(FloatToFp16Bits(-tiny / 2), 0x8000);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(tiny / 2, 1.0f)), 0x0001);
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(tiny / 2, 0.0f)), 0x0000);
  EXPECT_EQ(FloatToFp16Bits(tiny / 4), 0x0000);
  EXPECT_EQ(FloatToFp16Bits(3 * tiny / 2), 0x0002);  // tie, 0x0001 odd -> up
  EXPECT_EQ(FloatToFp16Bits(5 * tiny / 2), 0x0002);  // tie, 0x0002 even -> down
  EXPECT_EQ(FloatToFp16Bits(1023 * tiny), 0x03ff);
  EXPECT_EQ(FloatToFp16Bits(1023.5f * tiny), 0x0400);  // tie, carries into the min normal
  EXPECT_EQ(FloatToFp16Bits(std::nextafter(1023.5f * tiny, 0.0f)), 0x03ff);
  EXPECT_EQ(FloatToFp16Bits(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(FloatToFp16Bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToFp16Bits(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(FloatToFp16Bits(std::numeric_limits<float>::min()), 0x0000);
}

TEST(Fp16Test, EveryFp16PatternRoundTripsExhaustively) {
  int nan_patterns = 0;
  for (uint32_t h = 0; h <= 0xffffu; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = Fp16BitsToFloat(bits);
    const uint16_t back = FloatToFp16Bits(f);
    if (IsFp16NaN(bits)) {
      ++nan_patterns;
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_EQ(back, (bits & 0x8000u) | 0x7e00u) << std::hex << h;
      continue;
    }
    ASSERT_EQ(back, bits) << std::hex << h;
    // Independent value check: sign * mantissa * 2^exponent.
    const int exp = (h >> 10) & 0x1f;
    const int mant = h & 0x3ff;
    double expect;
    if (exp == 0x1f) {
      expect = std::numeric_limits<double>::infinity();
    } else if (exp == 0) {
      expect = std::ldexp(static_cast<double>(mant), -24);
    } else {
      expect = std::ldexp(static_cast<double>(1024 + mant), exp - 25);
    }
    if (h & 0x8000u) expect = -expect;
    ASSERT_EQ(static_cast<double>(f), expect) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << h;
  }
  EXPECT_EQ(nan_patterns, 2 * 1023);
}

// A slow, independent float -> fp16 conversion: scale to an integer multiple of the target
// quantum in long double, round with nearbyint (ties to even in the default mode), re-encode.
uint16_t ReferenceFloatToFp16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return sign | 0x7e00;
  const long double a = std::fabs(static_cast<long double>(f));
  if (std::isinf(f)) return sign | 0x7c00;
  const long double min_normal = std::ldexp(1.0L, -14);
  long double quantum;
  if (a < min_normal) {
    quantum = std::ldexp(1.0L, -24);
  } else {
    int e = 0;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1): leading bit is 2^(e-1)
    quantum = std::ldexp(1.0L, e - 1 - 10);
  }
  const long double r = std::nearbyint(a / quantum) * quantum;
  if (r > 65504.0L) return sign | 0x7c00;
  if (r == 0) return sign;
  if (r < min_normal) return sign | static_cast<uint16_t>(r / std::ldexp(1.0L, -24));
  int e = 0;
  const long double m = std::frexp(r, &e);  // r = m * 2^e
  const int biased = (e - 1) + 15;
  const auto mant = static_cast<uint16_t>((m * 2 - 1) * 1024);
  return sign | static_cast<uint16_t>(biased << 10) | mant;
}

TEST(Fp16Test, ReferenceSelfCheck) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  EXPECT_EQ(ReferenceFloatToFp16(1.0f), 0x3c00);
  EXPECT_EQ(ReferenceFloatToFp16(65504.0f), 0x7bff);
  EXPECT_EQ(ReferenceFloatToFp16(65520.0f), 0x7c00);
  EXPECT_EQ(ReferenceFloatToFp16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(ReferenceFloatToFp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(ReferenceFloatToFp16(1023.5f * std::ldexp(1.0f, -24)), 0x0400);
  for (uint32_t h = 0; h < 0x7c00u; h += 7) {
    ASSERT_EQ(ReferenceFloatToFp16(Fp16BitsToFloat(static_cast<uint16_t>(h))), h);
  }
}

TEST(Fp16Test, MatchesReferenceOnEveryTieNeighbourhood) {
  // Every float whose top 19 bits select an fp16-relevant value, with the 13 bits that fp16
  // drops set to the interesting cases: exact, just above/below the tie, the tie, max.
  for (uint32_t top = 0; top < (1u << 19); ++top) {
    for (uint32_t low : {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu}) {
      const uint32_t u = (top << 13) | low;
      const float f = BitsToFloat(u);
      ASSERT_EQ(FloatToFp16Bits(f), ReferenceFloatToFp16(f)) << std::hex << "bits=0x" << u;
    }
  }
}

TEST(Fp16Test, MatchesReferenceOnRandomFloats) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint32_t> bits;
  // Half uniform bit patterns (every exponent), half with exponents near the fp16 range.
  std::uniform_int_distribution<int> exponent(127 - 27, 127 + 17);
  for (int i = 0; i < 3000000; ++i) {
    uint32_t u = bits(rng);
    if (i & 1) u = (u & 0x807fffffu) | (static_cast<uint32_t>(exponent(rng)) << 23);
    const float f = BitsToFloat(u);
    const uint16_t got = FloatToFp16Bits(f);
    const uint16_t want = ReferenceFloatToFp16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(IsFp16QuietNaN(got)) << std::hex << u;
      ASSERT_EQ(got & 0x8000, want & 0x8000) << std::hex << u;
    } else {
      ASSERT_EQ(got, want) << std::hex << "bits=0x" << u << " value=" << f;
    }
  }
}

}  // namespace
}  // namespace moe
