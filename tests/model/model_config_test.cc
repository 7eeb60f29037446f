#include "model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace unet {
namespace {

using ::testing::HasSubstr;

constexpr char kValidJson[] = R"json({
  "format": "torchscript",
  "architecture": {"input_channels": 1, "num_classes": 2,
                   "channels": [8, 16, 32, 64, 128]},
  "normalization": {"mean": [0.5], "std": [0.25]},
  "class_names": ["cell", "membrane"],
  "valid_input_sizes": {"minimum": 188, "step": 16},
  "training": {"step": 1200, "metrics": {"pixel_error": 0.07}}
})json";

TEST(ModelConfigTest, ParsesAValidDocument) {
  const auto config = ParseModelConfig(kValidJson);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->format(), "torchscript");
  EXPECT_EQ(config->architecture().channels_size(), 5);
  EXPECT_EQ(config->class_names(1), "membrane");
  EXPECT_FLOAT_EQ(config->normalization().std(0), 0.25f);
  EXPECT_EQ(config->training().step(), 1200);
  EXPECT_DOUBLE_EQ(config->training().metrics().at("pixel_error"), 0.07);
}

TEST(ModelConfigTest, ParsesADicomWindow) {
  std::string json = kValidJson;
  json.insert(json.rfind('}'),
              R"(, "dicom_input": {"window": {"center": 40, "width": 400}})");
  const auto config = ParseModelConfig(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->dicom_input().window().width(), 400);
}

TEST(ModelConfigTest, FillsValidSizesFromTheArchitecture) {
  const auto config = ParseModelConfig(R"json({
    "format": "libtorch",
    "architecture": {"input_channels": 1, "num_classes": 1, "channels": [4, 8]},
    "class_names": ["foreground"]})json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->valid_input_sizes().minimum(), 18);
  EXPECT_EQ(config->valid_input_sizes().step(), 2);
}

TEST(ModelConfigTest, RoundTripsThroughJson) {
  const ModelConfig config = DefaultModelConfig(3, 4, {16, 32, 64});
  const auto parsed = ParseModelConfig(ModelConfigToJson(config));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->SerializeAsString(), config.SerializeAsString());
}

struct BadConfigCase {
  const char* name;
  const char* json;
  const char* message;
};

class BadModelConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadModelConfigTest, IsRejectedWithAReason) {
  const auto config = ParseModelConfig(GetParam().json);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadModelConfigTest,
    ::testing::Values(
        BadConfigCase{"NotJson", "{", "does not parse"},
        BadConfigCase{"UnknownField", R"({"colour": 1})", "does not parse"},
        BadConfigCase{
            "BadFormat",
            R"({"format": "onnx", "architecture": {"channels": [4]}})",
            "format"},
        BadConfigCase{"NoChannels",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 1}})",
                      "channels is empty"},
        BadConfigCase{"ClassNamesMismatch",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 2,
                           "channels": [4]}, "class_names": ["a"]})",
                      "class_names"},
        BadConfigCase{"TooManyClasses",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 300,
                           "channels": [4]}})",
                      "num_classes"},
        BadConfigCase{"NormalizationPerChannel",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 3, "num_classes": 1,
                           "channels": [4]}, "class_names": ["a"],
                          "normalization": {"mean": [0, 0]}})",
                      "normalization.mean"},
        BadConfigCase{"ZeroStd",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 1,
                           "channels": [4]}, "class_names": ["a"],
                          "normalization": {"std": [0]}})",
                      "std must be positive"},
        BadConfigCase{"WrongValidSizes",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 1,
                           "channels": [4, 8]}, "class_names": ["a"],
                          "valid_input_sizes": {"minimum": 572, "step": 16}})",
                      "disagrees"},
        BadConfigCase{"UnknownWeightsPrecision",
                      R"({"format": "libtorch", "weights_precision": "fp8",
                          "architecture": {"channels": [4]}})",
                      "weights_precision"},
        BadConfigCase{"ZeroWidthDicomWindow",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 1,
                           "channels": [4]}, "class_names": ["a"],
                          "dicom_input": {"window": {"center": 40}}})",
                      "dicom_input.window.width"},
        BadConfigCase{"EmptyDicomRange",
                      R"({"format": "libtorch", "architecture":
                          {"input_channels": 1, "num_classes": 1,
                           "channels": [4]}, "class_names": ["a"],
                          "dicom_input": {"range": {"min": 5, "max": 5}}})",
                      "dicom_input.range.max"},
        BadConfigCase{"HalfTorchScript",
                      R"({"format": "torchscript", "weights_precision": "fp16",
                          "architecture": {"channels": [4]}})",
                      "libtorch format only"}),
    [](const auto& info) { return info.param.name; });

TEST(ModelConfigTest, ReadReportsAMissingFile) {
  EXPECT_EQ(ReadModelConfig("/nonexistent/model.json").status().code(),
            absl::StatusCode::kNotFound);
}

// Found by fuzzing: a 23-level file took eight minutes to parse.
TEST(ModelConfigTest, RefusesTooManyLevelsAtOnce) {
  std::string json = R"({"format": "libtorch", "architecture": {
      "input_channels": 1, "num_classes": 2, "channels": [)";
  for (int i = 0; i < 40; ++i) json += i ? ",2" : "2";
  json += R"(]}, "class_names": ["a", "b"]})";
  const auto config = ParseModelConfig(json);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("levels"), std::string::npos);
}

}  // namespace
}  // namespace unet
