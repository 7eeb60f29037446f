#include "client/cli/server_info.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace unet::client {
using segmentation::v1::VersionStatus;

namespace {

std::string FormatVersion(const VersionStatus& version) {
  std::string text = absl::StrCat(
      "v", version.version(), " ",
      absl::AsciiStrToLower(VersionStatus::State_Name(version.state())));
  if (!version.message().empty()) {
    absl::StrAppend(&text, " (", version.message(), ")");
  }
  return text;
}

std::string FormatVersions(
    const google::protobuf::RepeatedPtrField<VersionStatus>& versions) {
  std::vector<std::string> parts;
  for (const VersionStatus& version : versions) {
    parts.push_back(FormatVersion(version));
  }
  return parts.empty() ? "no versions" : absl::StrJoin(parts, ", ");
}

}  // namespace

std::string FormatModelList(
    const segmentation::v1::ListModelsResponse& models) {
  std::string text;
  for (const auto& model : models.models()) {
    absl::StrAppend(&text, model.name(), model.is_default() ? " (default)" : "",
                    ": ", FormatVersions(model.versions()), "\n");
  }
  return text.empty() ? "no models\n" : text;
}

std::string FormatModelInfo(const segmentation::v1::ModelInfo& info) {
  std::string text = absl::StrCat(info.name(), " v", info.version(), " (",
                                  info.format(), ") on ", info.device(), "\n");
  absl::StrAppend(&text, "  input: ", info.input_channels(),
                  " channel(s); valid sides ",
                  info.valid_input_sizes().minimum(), " + k * ",
                  info.valid_input_sizes().step(), "; context margin ",
                  info.context_margin(), " px\n");
  std::vector<std::string> classes;
  for (int c = 0; c < info.class_names_size(); ++c) {
    classes.push_back(absl::StrCat(c, " ", info.class_names(c)));
  }
  absl::StrAppend(&text, "  classes: ", absl::StrJoin(classes, ", "), "\n");
  if (!info.training_metrics().empty()) {
    // Sorted: a protobuf map iterates in no fixed order.
    const std::map<std::string, double> metrics(info.training_metrics().begin(),
                                                info.training_metrics().end());
    std::vector<std::string> parts;
    for (const auto& [name, value] : metrics) {
      parts.push_back(absl::StrFormat("%s %.4f", name, value));
    }
    absl::StrAppend(&text, "  training metrics: ", absl::StrJoin(parts, ", "),
                    "\n");
  }
  const auto& plan = info.execution_plan();
  absl::StrAppend(&text, "  execution plan (", plan.chosen_by(),
                  "): ", plan.instances_per_device(),
                  " instance(s) per device, ", plan.threads_per_instance(),
                  " thread(s) each, batches up to ", plan.max_batch_size());
  if (plan.measured_images_per_second() > 0) {
    absl::StrAppendFormat(&text, "; measured %.1f images/s, %.1f ms idle",
                          plan.measured_images_per_second(),
                          plan.measured_latency_ms());
  }
  absl::StrAppend(&text, "\n  versions: ", FormatVersions(info.versions()),
                  "\n");
  return text;
}

}  // namespace unet::client
