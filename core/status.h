// Status and StatusOr for recoverable outcomes (bad input, I/O, capacity), plus the propagation
// macros. Broken invariants use MOE_CHECK (core/check.h) instead.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace moe {
namespace internal {
// absl::StrCat takes absl::string_view, which Debian's abseil does not alias to
// std::string_view; convert at this edge.
template <typename T>
decltype(auto) StrArg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(v.data(), v.size());
  } else {
    return (v);
  }
}
}  // namespace internal

using Status = absl::Status;
template <typename T>
using StatusOr = absl::StatusOr<T>;

inline Status OkStatus() { return absl::OkStatus(); }

// Converts an absl message to a std::string (Debian's abseil does not alias std::string_view).
inline std::string StatusMessage(const Status& s) { return std::string(s.message()); }

// Builds a status of the given code from any number of StrCat-able pieces.
template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status NotFound(const Args&... args) {
  return absl::NotFoundError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return absl::InternalError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status Unimplemented(const Args&... args) {
  return absl::UnimplementedError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status ResourceExhausted(const Args&... args) {
  return absl::ResourceExhaustedError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status Unavailable(const Args&... args) {
  return absl::UnavailableError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status FailedPrecondition(const Args&... args) {
  return absl::FailedPreconditionError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status DataLoss(const Args&... args) {
  return absl::DataLossError(absl::StrCat(internal::StrArg(args)...));
}
template <typename... Args>
Status OutOfRange(const Args&... args) {
  return absl::OutOfRangeError(absl::StrCat(internal::StrArg(args)...));
}

// Prefixes the message of a non-OK status with context, keeping its code.
inline Status Annotate(const Status& s, std::string_view context) {
  if (s.ok()) return s;
  return Status(s.code(), absl::StrCat(internal::StrArg(context), ": ", s.message()));
}

}  // namespace moe

#define MOE_STATUS_CONCAT_INNER_(a, b) a##b
#define MOE_STATUS_CONCAT_(a, b) MOE_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define MOE_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::moe::Status moe_status_ = (expr);        \
    if (!moe_status_.ok()) return moe_status_; \
  } while (0)

// `MOE_ASSIGN_OR_RETURN(auto x, F());` declares/assigns x from a StatusOr or returns its error.
#define MOE_ASSIGN_OR_RETURN(lhs, expr) \
  MOE_ASSIGN_OR_RETURN_IMPL_(MOE_STATUS_CONCAT_(moe_statusor_, __COUNTER__), lhs, expr)
#define MOE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
