// Invariant checks. A failed MOE_CHECK is a bug, not bad input: it prints file:line and the
// streamed message, then aborts. Recoverable outcomes use Status (core/status.h).
#pragma once

#include <sstream>

namespace moe::internal {

// Collects the streamed message and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets the ternary in MOE_CHECK have type void on both branches.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace moe::internal

#define MOE_CHECK(cond)           \
  (__builtin_expect(!!(cond), 1)) \
      ? (void)0                   \
      : ::moe::internal::Voidify() & ::moe::internal::CheckFailure(__FILE__, __LINE__, #cond)

#define MOE_CHECK_OP_(a, b, op) MOE_CHECK((a)op(b)) << "(" << (a) << " vs " << (b) << ") "
#define MOE_CHECK_EQ(a, b) MOE_CHECK_OP_(a, b, ==)
#define MOE_CHECK_NE(a, b) MOE_CHECK_OP_(a, b, !=)
#define MOE_CHECK_LT(a, b) MOE_CHECK_OP_(a, b, <)
#define MOE_CHECK_LE(a, b) MOE_CHECK_OP_(a, b, <=)
#define MOE_CHECK_GT(a, b) MOE_CHECK_OP_(a, b, >)
#define MOE_CHECK_GE(a, b) MOE_CHECK_OP_(a, b, >=)

// For CUDA runtime calls, in translation units that include the CUDA runtime.
#define MOE_CUDA_CHECK(expr)                                                                       \
  do {                                                                                             \
    cudaError_t moe_cuda_err_ = (expr);                                                            \
    MOE_CHECK(moe_cuda_err_ == cudaSuccess) << #expr << ": " << cudaGetErrorString(moe_cuda_err_); \
  } while (0)
