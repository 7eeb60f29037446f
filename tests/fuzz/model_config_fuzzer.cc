// Parses arbitrary bytes as model.json. A config that parses must survive
// being written and read again unchanged: the trainer writes what the server
// reads.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"
#include "model/model_config.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "model config round trip: %s\n%s\n", what,
               detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<unet::ModelConfig> config = unet::ParseModelConfig(json);
  if (!config.ok()) {
    // Bad documents are the client's error, never an internal one.
    if (config.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("unexpected status code", config.status().ToString());
    }
    return 0;
  }
  const std::string written = unet::ModelConfigToJson(*config);
  const absl::StatusOr<unet::ModelConfig> reread =
      unet::ParseModelConfig(written);
  if (!reread.ok()) {
    Fail("written config does not parse",
         reread.status().ToString() + "\n" + written);
  }
  // Compared as messages: the order of training.metrics in the JSON follows
  // the map's hashing and changes from one copy to the next. A NaN mean is a
  // legal float and round-trips as "NaN".
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  if (!differencer.Compare(*config, *reread)) {
    Fail("written config reads back different", differences + "\n" + written);
  }
  return 0;
}
