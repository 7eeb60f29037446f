#include "model/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "model/unet_geometry.h"

namespace unet {
namespace {

// The mask holds one uint8 class index per pixel.
constexpr int kMaxClasses = 256;
// Deeper than any U-Net in use (the seed has 5); bounds the search for
// valid input sizes.
constexpr int kMaxLevels = 8;

absl::Status CheckPerChannel(const google::protobuf::RepeatedField<float>& v,
                             int channels, const char* name) {
  if (v.empty() || v.size() == 1 || v.size() == channels) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("normalization.", name, " has ", v.size(),
                   " values; expected 1 or ", channels));
}

}  // namespace

absl::Status ValidateModelConfig(const ModelConfig& config) {
  if (config.format() != kFormatLibTorch &&
      config.format() != kFormatTorchScript) {
    return absl::InvalidArgumentError(
        absl::StrCat("format is \"", config.format(), "\"; expected \"",
                     kFormatLibTorch, "\" or \"", kFormatTorchScript, "\""));
  }
  if (!config.weights_precision().empty() &&
      config.weights_precision() != "fp32" &&
      config.weights_precision() != "fp16") {
    return absl::InvalidArgumentError(
        absl::StrCat("weights_precision is \"", config.weights_precision(),
                     "\"; expected \"fp32\" or \"fp16\""));
  }
  if (config.weights_precision() == "fp16" &&
      config.format() != kFormatLibTorch) {
    return absl::InvalidArgumentError(
        "weights_precision fp16 is for the libtorch format only");
  }
  const auto& dicom = config.dicom_input();
  if (dicom.has_window() && !(dicom.window().width() > 0)) {
    return absl::InvalidArgumentError("dicom_input.window.width must be > 0");
  }
  if (dicom.has_range() && !(dicom.range().max() > dicom.range().min())) {
    return absl::InvalidArgumentError(
        "dicom_input.range.max must be above dicom_input.range.min");
  }
  for (const auto& coding : config.class_codings()) {
    for (const auto* code : {&coding.category(), &coding.type()}) {
      if (code->value().empty() || code->scheme().empty() ||
          code->meaning().empty()) {
        return absl::InvalidArgumentError(
            "class_codings: every code needs a value, a scheme and a meaning");
      }
    }
  }
  const auto& arch = config.architecture();
  if (arch.input_channels() < 1) {
    return absl::InvalidArgumentError(
        "architecture.input_channels must be >= 1");
  }
  if (arch.num_classes() < 1 || arch.num_classes() > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "architecture.num_classes must be in [1, ", kMaxClasses, "]"));
  }
  if (arch.channels().empty()) {
    return absl::InvalidArgumentError("architecture.channels is empty");
  }
  if (arch.channels_size() > kMaxLevels) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture.channels has ", arch.channels_size(),
                     " levels; at most ", kMaxLevels));
  }
  for (uint32_t c : arch.channels()) {
    if (c < 1) return absl::InvalidArgumentError("a channel count is 0");
  }
  if (config.class_names_size() != static_cast<int>(arch.num_classes())) {
    return absl::InvalidArgumentError(
        absl::StrCat("class_names has ", config.class_names_size(),
                     " names for ", arch.num_classes(), " classes"));
  }
  if (!config.class_codings().empty() &&
      config.class_codings_size() != static_cast<int>(arch.num_classes())) {
    return absl::InvalidArgumentError(
        absl::StrCat("class_codings has ", config.class_codings_size(),
                     " codings for ", arch.num_classes(), " classes"));
  }
  const int channels = arch.input_channels();
  RETURN_IF_ERROR(
      CheckPerChannel(config.normalization().mean(), channels, "mean"));
  RETURN_IF_ERROR(
      CheckPerChannel(config.normalization().std(), channels, "std"));
  for (float s : config.normalization().std()) {
    if (!(s > 0)) {
      return absl::InvalidArgumentError("normalization.std must be positive");
    }
  }
  const ValidSides sides = ValidInputSides(arch.channels_size());
  const auto& declared = config.valid_input_sizes();
  if (declared.minimum() != static_cast<uint32_t>(sides.minimum) ||
      declared.step() != static_cast<uint32_t>(sides.step)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_input_sizes {", declared.minimum(), ", ", declared.step(),
        "} disagrees with a ", arch.channels_size(), "-level U-Net {",
        sides.minimum, ", ", sides.step, "}"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json) {
  ModelConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(json, &config, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.json does not parse: ", parsed.ToString()));
  }
  // Levels are checked first: the valid sizes of a deeper network take
  // exponentially long to find (fuzzing found a 23-level file that took
  // eight minutes), and 1 << levels overflows past 31.
  if (!config.has_valid_input_sizes() &&
      !config.architecture().channels().empty() &&
      config.architecture().channels_size() <= kMaxLevels) {
    const ValidSides sides =
        ValidInputSides(config.architecture().channels_size());
    config.mutable_valid_input_sizes()->set_minimum(sides.minimum);
    config.mutable_valid_input_sizes()->set_step(sides.step);
  }
  RETURN_IF_ERROR(ValidateModelConfig(config));
  return config;
}

absl::StatusOr<ModelConfig> ReadModelConfig(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  }
  std::stringstream contents;
  contents << file.rdbuf();
  auto config = ParseModelConfig(contents.str());
  if (!config.ok()) {
    return absl::Status(
        config.status().code(),
        absl::StrCat(path.string(), ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(config, &json, options);
  return json;
}

ModelConfig DefaultModelConfig(int input_channels, int num_classes,
                               const std::vector<int>& channels) {
  ModelConfig config;
  config.set_format(kFormatLibTorch);
  auto* arch = config.mutable_architecture();
  arch->set_input_channels(input_channels);
  arch->set_num_classes(num_classes);
  for (int c : channels) arch->add_channels(c);
  config.mutable_normalization()->add_mean(0.0f);
  config.mutable_normalization()->add_std(1.0f);
  for (int c = 0; c < num_classes; ++c) {
    config.add_class_names(absl::StrCat("class_", c));
  }
  const ValidSides sides = ValidInputSides(static_cast<int>(channels.size()));
  config.mutable_valid_input_sizes()->set_minimum(sides.minimum);
  config.mutable_valid_input_sizes()->set_step(sides.step);
  return config;
}

}  // namespace unet
