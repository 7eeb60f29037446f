#ifndef COMMON_STATUS_MACROS_H_
#define COMMON_STATUS_MACROS_H_

// Abseil 20220623 (Debian 12) ships no status macros; these are the two the
// code base needs.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define STATUS_MACROS_CONCAT_(a, b) STATUS_MACROS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                                         \
  do {                                                                \
    if (absl::Status status_ = (expr); !status_.ok()) return status_; \
  } while (false)

// Evaluates `rexpr` (a StatusOr), returns its status on error, else moves the
// value into `lhs` (a declaration or an existing variable).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(STATUS_MACROS_CONCAT_(statusor_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // COMMON_STATUS_MACROS_H_
