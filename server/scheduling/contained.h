#ifndef SERVER_SCHEDULING_CONTAINED_H_
#define SERVER_SCHEDULING_CONTAINED_H_

// Keeps exceptions on the workers' threads: what runs a batch or completes
// a job must turn them into a status, so that none ends the process and
// every job is completed.

#include <exception>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace unet {

// Calls `fn` (returning a Status or StatusOr); an exception becomes a
// status: bad_alloc RESOURCE_EXHAUSTED, anything else INTERNAL (the
// server's own bug). `doing` names the work in the message.
template <typename Fn>
auto Contained(absl::string_view doing, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: cannot ", doing));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot ", doing, ": ", e.what()));
  }
}

}  // namespace unet

#endif  // SERVER_SCHEDULING_CONTAINED_H_
