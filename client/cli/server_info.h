#ifndef CLIENT_CLI_SERVER_INFO_H_
#define CLIENT_CLI_SERVER_INFO_H_

// `segment models` and `segment info`: the server's ListModels and
// GetModelInfo answers as text for people.

#include <string>

#include "segmentation/v1/segmentation.pb.h"

namespace unet::client {

// One line per model: its name, "(default)", and each version's state.
std::string FormatModelList(const segmentation::v1::ListModelsResponse& models);

// The model version's inputs, classes, metrics, execution plan and versions.
std::string FormatModelInfo(const segmentation::v1::ModelInfo& info);

}  // namespace unet::client

#endif  // CLIENT_CLI_SERVER_INFO_H_
